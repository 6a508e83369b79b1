"""The policies against Smith's formulas, hand-computed values and torch's own schedulers."""

from __future__ import annotations

import math
import pickle
import re
import warnings
from itertools import pairwise

import pytest
import torch
from matplotlib.figure import Figure

from lightning_clr.plotting import plot_schedule
from lightning_clr.policies import ExpRange, Fixed, OneCycle, Policy, Triangular, Triangular2, WholeCycles

REL = 1e-9


def paper_lr(iteration: int, base_lr: float, max_lr: float, step_size: int, scale: float = 1.0) -> float:
    """Smith (2017), section 3.1, verbatim."""
    cycle = math.floor(1 + iteration / (2 * step_size))
    x = abs(iteration / step_size - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * max(0, 1 - x) * scale


# --- Smith's formulas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iteration", "lr"),
    [
        (0, 0.001),
        (500, 0.00225),
        (1000, 0.0035),
        (2000, 0.006),
        (3000, 0.0035),
        (4000, 0.001),
        (4500, 0.00225),
        (5000, 0.0035),
    ],
)
def test_triangular_hand_computed(iteration: int, lr: float) -> None:
    assert Triangular(0.001, 0.006, step_size=2000)(iteration) == pytest.approx(lr, rel=REL)


def test_triangular2_halves_the_amplitude_every_cycle() -> None:
    policy = Triangular2(0.001, 0.006, step_size=2000)
    peaks = [policy(2000 + 4000 * k) for k in range(4)]
    assert peaks == pytest.approx([0.006, 0.0035, 0.00225, 0.001625], rel=REL)
    assert [policy(4000 * k) for k in range(4)] == pytest.approx([0.001] * 4, rel=REL)


def test_exp_range_decays_the_amplitude_not_the_base() -> None:
    policy = ExpRange(0.001, 0.006, 2000, 0.99994)
    assert policy(2000) == pytest.approx(0.001 + 0.005 * 0.99994**2000, rel=REL)
    assert policy(6000) == pytest.approx(0.001 + 0.005 * 0.99994**6000, rel=REL)
    assert policy(8000) == pytest.approx(0.001, rel=REL)


@pytest.mark.parametrize(
    ("make", "scale"),
    [
        (Triangular, lambda cycle, it: 1.0),
        (Triangular2, lambda cycle, it: 1 / 2 ** (cycle - 1)),
        (lambda *a: ExpRange(*a, gamma=0.9995), lambda cycle, it: 0.9995**it),
    ],
    ids=["triangular", "triangular2", "exp_range"],
)
def test_matches_the_paper_formula(make, scale) -> None:
    policy = make(0.01, 0.1, 37)
    for it in range(1000):
        cycle = math.floor(1 + it / 74)
        assert policy(it) == pytest.approx(paper_lr(it, 0.01, 0.1, 37, scale(cycle, it)), rel=REL)
        assert policy.cycle(it) == cycle


def test_asymmetric_rise_and_fall() -> None:
    policy = Triangular(1.0, 3.0, step_size=2, step_size_down=4)
    assert [policy(it) for it in range(9)] == pytest.approx([1, 2, 3, 2.5, 2, 1.5, 1, 2, 3], rel=REL)
    assert [policy.cycle(it) for it in (0, 5, 6, 11, 12)] == [1, 1, 2, 2, 3]


def test_momentum_scale_is_the_height_of_the_triangle() -> None:
    policy = Triangular2(0.001, 0.006, step_size=10)
    assert [policy.momentum_scale(it) for it in (0, 5, 10, 20, 30)] == pytest.approx([0, 0.5, 1, 0, 0.5])


def test_per_group_bounds_and_broadcasting() -> None:
    policy = Triangular([0.001, 0.01], 0.1, step_size=10)
    assert policy.num_groups == 2
    assert policy(10, 0) == policy(10, 1) == 0.1
    assert (policy(0, 0), policy(0, 1)) == (0.001, 0.01)
    scalar = Triangular(0.001, 0.1, step_size=10)
    assert scalar.num_groups is None
    assert scalar(5, group=3) == scalar(5)
    with pytest.raises(IndexError):
        policy(0, 2)


# --- agreement with torch -----------------------------------------------------------------------------


def _torch_run(make_scheduler, lrs: list[float], steps: int) -> tuple[list[list[float]], list[list[float]]]:
    """LR and momentum of every param group at each of the first ``steps`` optimizer steps."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    optimizer = torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)], momentum=0.9
    )
    scheduler = make_scheduler(optimizer)
    lr_trace, momentum_trace = [], []
    with warnings.catch_warnings():  # the schedule alone is compared: no optimizer.step() needed
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for _ in range(steps):
            lr_trace.append([group["lr"] for group in optimizer.param_groups])
            momentum_trace.append([group["momentum"] for group in optimizer.param_groups])
            scheduler.step()
    return lr_trace, momentum_trace


def _max_relative_error(ours: list[list[float]], theirs: list[list[float]]) -> float:
    return max(
        abs(a - b) / abs(b)
        for row, expected in zip(ours, theirs, strict=True)
        for a, b in zip(row, expected, strict=True)
    )


def _assert_same_schedule(policy: Policy, lr_trace, momentum_trace, base_m: float, max_m: float) -> None:
    steps, groups = len(lr_trace), len(lr_trace[0])
    lrs = [[policy(it, g) for g in range(groups)] for it in range(steps)]
    momentum = [[max_m - (max_m - base_m) * policy.momentum_scale(it)] * groups for it in range(steps)]
    assert _max_relative_error(lrs, lr_trace) < REL
    assert _max_relative_error(momentum, momentum_trace) < REL


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize(("up", "down"), [(400, None), (300, 700)], ids=["symmetric", "asymmetric"])
@pytest.mark.parametrize(
    ("base_lr", "max_lr"),
    [(0.001, 0.006), ([0.001, 0.02], [0.006, 0.1]), (0.001, [0.006, 0.01])],
    ids=["scalar", "per_group", "broadcast"],
)
def test_cyclic_policies_match_torch_cyclic_lr(mode, up, down, base_lr, max_lr) -> None:
    gamma = 0.9997
    policy = {
        "triangular": Triangular(base_lr, max_lr, up, down),
        "triangular2": Triangular2(base_lr, max_lr, up, down),
        "exp_range": ExpRange(base_lr, max_lr, up, gamma, down),
    }[mode]
    groups = policy.num_groups or 1
    bases = base_lr if isinstance(base_lr, list) else [base_lr] * groups
    maxes = max_lr if isinstance(max_lr, list) else [max_lr] * groups

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.CyclicLR(
            optimizer, bases, maxes, step_size_up=up, step_size_down=down, mode=mode, gamma=gamma,
            cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
        )  # fmt: skip

    lr_trace, momentum_trace = _torch_run(make_scheduler, bases, 4000)
    _assert_same_schedule(policy, lr_trace, momentum_trace, 0.85, 0.95)


@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True], ids=["two_phase", "three_phase"])
@pytest.mark.parametrize(
    ("max_lr", "total_steps"), [(0.1, 1000), ([0.1, 0.5], 997)], ids=["scalar", "groups"]
)
def test_one_cycle_matches_torch_one_cycle_lr(anneal_strategy, three_phase, max_lr, total_steps) -> None:
    kwargs = dict(pct_start=0.25, div_factor=10.0, final_div_factor=100.0, anneal_strategy=anneal_strategy)
    policy = OneCycle(max_lr, total_steps, three_phase=three_phase, **kwargs)
    maxes = max_lr if isinstance(max_lr, list) else [max_lr]

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, maxes, total_steps, three_phase=three_phase, base_momentum=0.8, max_momentum=0.9,
            **kwargs,
        )  # fmt: skip

    lr_trace, momentum_trace = _torch_run(make_scheduler, maxes, total_steps)
    _assert_same_schedule(policy, lr_trace, momentum_trace, 0.8, 0.9)


@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
def test_one_cycle_defaults_match_torch_one_cycle_lr_defaults(anneal_strategy) -> None:
    policy = OneCycle(0.1, 1000, anneal_strategy=anneal_strategy)  # pct_start 0.3, div 25, final div 1e4

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, 1000, anneal_strategy=anneal_strategy)

    lr_trace, momentum_trace = _torch_run(make_scheduler, [0.1], 1000)
    _assert_same_schedule(policy, lr_trace, momentum_trace, 0.85, 0.95)


def test_one_cycle_defaults_and_the_end_of_the_run() -> None:
    policy = OneCycle(0.1, total_steps=1000)
    assert policy(0) == pytest.approx(0.1 / 25, rel=REL)
    assert policy(299) == pytest.approx(0.1, rel=REL)
    assert policy(999) == pytest.approx(0.1 / 25 / 1e4, rel=REL)
    assert policy(1000) == policy(5000) == policy(999)  # OneCycleLR raises past the end; we hold
    assert policy.momentum_scale(5000) == 0.0


def test_one_cycle_zero_length_warmup_starts_at_the_peak() -> None:
    policy = OneCycle(0.1, total_steps=10, pct_start=0.1)  # OneCycleLR divides by zero here
    assert policy(0) == pytest.approx(0.1, rel=REL)
    assert policy(9) == pytest.approx(0.1 / 25 / 1e4, rel=REL)


def test_fixed_matches_multistep_lr() -> None:
    policy = Fixed([0.1, 0.02], milestones=[100, 250], gamma=0.5)

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[100, 250], gamma=0.5)

    lr_trace, _ = _torch_run(make_scheduler, [0.1, 0.02], 400)
    ours = [[policy(it, g) for g in range(2)] for it in range(400)]
    assert _max_relative_error(ours, lr_trace) < REL
    assert policy.momentum_scale(150) == 0.0
    assert Fixed(0.05)(10**6) == 0.05


# --- the final anneal and whole cycles -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize(
    ("base_lr", "max_lr"), [(0.001, 0.006), ([0.001, 0.02], [0.006, 0.1])], ids=["scalar", "per_group"]
)
def test_final_anneal_keeps_every_step_before_it_and_ends_at_base_over_div(mode, base_lr, max_lr) -> None:
    gamma, total = 0.9997, 3000
    arguments = dict(final_anneal=0.15, final_div_factor=50.0, total_steps=total)
    policy = {
        "triangular": Triangular(base_lr, max_lr, 400, **arguments),
        "triangular2": Triangular2(base_lr, max_lr, 400, **arguments),
        "exp_range": ExpRange(base_lr, max_lr, 400, gamma, **arguments),
    }[mode]
    plain = policy.replace(final_anneal=0.0)
    first = policy.anneal_start()
    assert first == total - 450
    groups = policy.num_groups or 1
    bases = base_lr if isinstance(base_lr, list) else [base_lr]

    def make_scheduler(optimizer):
        return torch.optim.lr_scheduler.CyclicLR(
            optimizer, bases, max_lr, step_size_up=400, mode=mode, gamma=gamma, cycle_momentum=True,
            base_momentum=0.85, max_momentum=0.95,
        )  # fmt: skip

    lr_trace, momentum_trace = _torch_run(make_scheduler, bases, first)
    _assert_same_schedule(policy, lr_trace, momentum_trace, 0.85, 0.95)
    for group in range(groups):
        assert [policy(it, group) for it in range(first)] == [plain(it, group) for it in range(first)]
        annealed = [policy(it, group) for it in range(first - 1, total)]
        assert annealed[0] == plain(first - 1, group)  # the anneal starts where the policy stood
        assert all(a > b for a, b in pairwise(annealed))  # and falls at every step
        assert policy(total - 1, group) == pytest.approx(bases[group] / 50.0, rel=REL)
        assert policy(total + 100, group) == policy(total - 1, group)  # past the run it holds
    assert policy.momentum_scale(total - 1) == 0.0


def test_final_anneal_resolves_the_run_length_and_cycles_the_step_size() -> None:
    policy = Triangular2(0.01, 0.1, step_size_epochs=2, final_anneal=0.1)
    assert policy.needs_resolution
    with pytest.raises(RuntimeError, match="step_size_epochs"):
        policy(0)
    resolved = policy.resolve(steps_per_epoch=40, total_steps=800)
    assert resolved == Triangular2(0.01, 0.1, step_size=80, final_anneal=0.1, total_steps=800)
    assert resolved(799) == pytest.approx(0.0001, rel=REL)
    given = Triangular(0.01, 0.1, step_size=80, final_anneal=0.1, total_steps=500)
    assert given.resolve(40, total_steps=800) is given  # a given total_steps is kept
    assert Triangular(0.01, 0.1, cycles=3).resolve(None, total_steps=800) == Triangular(0.01, 0.1, 133)
    assert ExpRange(0.01, 0.1, None, 0.99, cycles=4, total_steps=800).resolve(None) == ExpRange(
        0.01, 0.1, 100, 0.99, total_steps=800
    )
    with pytest.raises(ValueError, match=r"^total_steps=inf must be a finite number .* cycles=2.0"):
        Triangular(0.01, 0.1, cycles=2).resolve(40, total_steps=float("inf"))
    with pytest.raises(ValueError, match=r"^total_steps=None .* final_anneal=0.2"):
        Triangular(0.01, 0.1, 10, final_anneal=0.2).resolve(40)
    with pytest.raises(RuntimeError, match="total_steps=None"):
        Triangular(0.01, 0.1, 10, final_anneal=0.2)(0)


def test_whole_cycles_and_the_warning_for_a_run_that_ends_mid_cycle() -> None:
    policy = Triangular(0.065, 0.2, step_size=160)  # the former default: 4 epochs of 40 steps
    assert policy.whole_cycles(800) == WholeCycles(2.5, 320, False, 960)
    assert policy.whole_cycles(960) == WholeCycles(3.0, 320, True, 960)
    assert policy.whole_cycles(100).nearest_steps == 320  # at least one cycle
    assert policy.whole_cycle_epochs(steps_per_epoch=40, epochs=20) == 24
    assert Triangular(0.1, 1.0, step_size=30).whole_cycle_epochs(40, 10) == 9  # 60-step cycles: 3 epochs
    warning = policy.run_length_problem(800, steps_per_epoch=40)
    assert warning is not None
    for part in ("800 optimizer steps (20 epochs)", "a cycle is 320 (8 epochs)", "2.5 cycles in",
                 "trainer.max_epochs=24 (or max_steps=960)"):  # fmt: skip
        assert part in warning
    assert policy.run_length_problem(960, 40) is None
    assert policy.replace(final_anneal=0.1, total_steps=800).run_length_problem(800, 40) is None
    assert Triangular(0.065, 0.2, step_size=100).run_length_problem(800, 40) is None  # the new default


# --- resolution, copies, equality ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epochs", "steps_per_epoch", "step_size"), [(4, 500, 2000), (2.5, 37, 92), (0.1, 3, 1)]
)
def test_resolve_step_size_from_epochs(epochs, steps_per_epoch, step_size) -> None:
    policy = ExpRange(0.001, 0.006, None, 0.999, step_size_epochs=epochs)
    assert policy.needs_resolution
    with pytest.raises(RuntimeError, match="step_size_epochs"):
        policy(0)
    resolved = policy.resolve(steps_per_epoch)
    assert resolved == ExpRange(0.001, 0.006, step_size, 0.999)
    assert not resolved.needs_resolution
    assert resolved.resolve(7) is resolved
    assert policy.step_size_epochs == epochs  # the original is untouched


def test_resolve_one_cycle_total_steps() -> None:
    policy = OneCycle(0.1)
    assert policy.needs_resolution
    with pytest.raises(RuntimeError, match="total_steps"):
        policy.momentum_scale(0)
    assert policy.resolve(10, total_steps=500) == OneCycle(0.1, 500)
    with pytest.raises(ValueError, match=r"^total_steps=None "):
        policy.resolve(10)
    with pytest.raises(ValueError, match=r"^steps_per_epoch=0 "):
        Triangular(0.1, 1.0, step_size_epochs=2).resolve(0)
    assert Fixed(0.1).resolve(10) == Fixed(0.1)


@pytest.mark.parametrize(
    "policy",
    [
        Triangular(0.001, 0.006, 2000),
        Triangular2([0.001, 0.002], 0.006, 2000, 1000),
        ExpRange(0.001, 0.006, None, 0.99994, step_size_epochs=4),
        Fixed(0.1, [10, 20], 0.5),
        OneCycle([0.1, 0.2], 1000, anneal_strategy="linear", three_phase=True),
    ],
    ids=lambda p: p.name,
)
def test_params_repr_equality_and_immutability(policy: Policy) -> None:
    params = policy.params()
    assert type(policy)(**params) == policy
    assert eval(repr(policy)) == policy
    assert hash(type(policy)(**params)) == hash(policy)
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert all(not isinstance(v, tuple) for v in params.values())  # plain values: lists, not tuples
    with pytest.raises(AttributeError):
        policy.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        setattr(policy, next(iter(params)), 1.0)


def test_names_and_distinct_types() -> None:
    assert [p.name for p in (Triangular, Triangular2, ExpRange, Fixed, OneCycle)] == [
        "triangular", "triangular2", "exp_range", "fixed", "one_cycle",
    ]  # fmt: skip
    assert Triangular(0.1, 1.0, 10) != Triangular2(0.1, 1.0, 10)
    assert Triangular(0.1, 1, 10.0) == Triangular(0.1, 1.0, 10)
    assert repr(Triangular(0.001, 0.006, step_size_epochs=4)) == (
        "Triangular(base_lr=0.001, max_lr=0.006, step_size_epochs=4.0)"
    )


def test_replace_validates() -> None:
    policy = Triangular(0.001, 0.006, 2000)
    assert policy.replace(max_lr=0.01) == Triangular(0.001, 0.01, 2000)
    assert policy.replace(step_size=None, step_size_epochs=2).needs_resolution
    with pytest.raises(ValueError, match=r"^base_lr=0.1 must be less than max_lr=0.006"):
        policy.replace(base_lr=0.1)
    with pytest.raises(ValueError, match=r"^stepsize=5 is not an argument of Triangular"):
        policy.replace(stepsize=5)


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Triangular(0.5, 0.01, 10), "base_lr"),
        (lambda: Triangular(-1.0, 0.01, 10), "base_lr"),
        (lambda: Triangular(0, 0.01, 10), "base_lr"),
        (lambda: Triangular("abc", 0.01, 10), "base_lr"),
        (lambda: Triangular(True, 2.0, 10), "base_lr"),
        (lambda: Triangular(None, 2.0, 10), "base_lr"),
        (lambda: Triangular(float("nan"), 0.01, 10), "base_lr"),
        (lambda: Triangular(0.001, float("inf"), 10), "max_lr"),
        (lambda: Triangular(0.001, "0.01", 10), "max_lr"),
        (lambda: Triangular(0.001, -0.01, 10), "max_lr"),
        (lambda: Triangular([], [], 10), "base_lr"),
        (lambda: Triangular([0.001, -1.0], 0.01, 10), "base_lr"),
        (lambda: Triangular([0.001, 0.002], [0.01, 0.02, 0.03], 10), "max_lr"),
        (lambda: Triangular([0.001, 0.02], 0.01, 10), "base_lr"),
        (lambda: Triangular(0.001, 0.01, 0), "step_size"),
        (lambda: Triangular(0.001, 0.01, 2.5), "step_size"),
        (lambda: Triangular(0.001, 0.01, "abc"), "step_size"),
        (lambda: Triangular(0.001, 0.01, True), "step_size"),
        (lambda: Triangular(0.001, 0.01), "step_size"),
        (lambda: Triangular(0.001, 0.01, 10, step_size_epochs=2), "step_size"),
        (lambda: Triangular(0.001, 0.01, 10, 0), "step_size_down"),
        (lambda: Triangular(0.001, 0.01, step_size_down=5, step_size_epochs=2), "step_size_down"),
        (lambda: Triangular(0.001, 0.01, step_size_epochs=0), "step_size_epochs"),
        (lambda: Triangular2(0.001, 0.01, step_size_epochs="four"), "step_size_epochs"),
        (lambda: ExpRange(0.001, 0.01, 10, 1.5), "gamma"),
        (lambda: ExpRange(0.001, 0.01, 10, 0), "gamma"),
        (lambda: ExpRange(0.001, 0.01, 10, "abc"), "gamma"),
        (lambda: ExpRange(0.001, 0.01, None, 0.99), "step_size"),
        (lambda: Triangular(0.001, 0.01, 10, final_anneal=1.0), "final_anneal"),
        (lambda: Triangular2(0.001, 0.01, 10, final_anneal=-0.1), "final_anneal"),
        (lambda: ExpRange(0.001, 0.01, 10, 0.99, final_anneal="end"), "final_anneal"),
        (lambda: Triangular(0.001, 0.01, 10, final_div_factor=0), "final_div_factor"),
        (lambda: Triangular(0.001, 0.01, 10, total_steps=0), "total_steps"),
        (lambda: Triangular(0.001, 0.01, cycles=0), "cycles"),
        (lambda: Triangular(0.001, 0.01, 10, cycles=4), "step_size"),
        (lambda: Triangular(0.001, 0.01, step_size_epochs=2, cycles=4), "step_size_epochs"),
        (lambda: Triangular(0.001, 0.01, step_size_down=5, cycles=4), "step_size_down"),
        (lambda: Fixed(0), "lr"),
        (lambda: Fixed("abc"), "lr"),
        (lambda: Fixed(0.1, [20, 10]), "milestones"),
        (lambda: Fixed(0.1, [10, 10]), "milestones"),
        (lambda: Fixed(0.1, [0, 10]), "milestones"),
        (lambda: Fixed(0.1, [1.5]), "milestones"),
        (lambda: Fixed(0.1, 10), "milestones"),
        (lambda: Fixed(0.1, [10], gamma=2.0), "gamma"),
        (lambda: OneCycle(0), "max_lr"),
        (lambda: OneCycle([0.1, "x"]), "max_lr"),
        (lambda: OneCycle(0.1, 0), "total_steps"),
        (lambda: OneCycle(0.1, 10.5), "total_steps"),
        (lambda: OneCycle(0.1, pct_start=0), "pct_start"),
        (lambda: OneCycle(0.1, pct_start=1.0), "pct_start"),
        (lambda: OneCycle(0.1, pct_start="abc"), "pct_start"),
        (lambda: OneCycle(0.1, pct_start=0.6, three_phase=True), "pct_start"),
        (lambda: OneCycle(0.1, div_factor=0), "div_factor"),
        (lambda: OneCycle(0.1, final_div_factor=-1.0), "final_div_factor"),
        (lambda: OneCycle(0.1, anneal_strategy="cosine"), "anneal_strategy"),
        (lambda: OneCycle(0.1, three_phase="yes"), "three_phase"),
    ],
)
def test_invalid_arguments_name_the_argument(make, argument: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value).startswith(f"{argument}=")
    assert len(str(error.value)) > len(argument) + 10  # states the rule


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Triangular(0.5, 0.01, 10), "base_lr=0.5 must be less than max_lr=0.01"),
        (lambda: Triangular(0.001, 0.01, 0), "step_size=0 must be an integer >= 1"),
        (lambda: ExpRange(0.001, 0.01, 10, 1.5), "gamma=1.5 must be a number in (0, 1]"),
        (lambda: Triangular(-1.0, 0.01, 10), "base_lr=-1.0 must be a finite number > 0"),
        (lambda: Triangular(0.001, float("inf"), 10), "max_lr=inf must be a finite number > 0"),
        (lambda: Triangular(float("nan"), 0.01, 10), "base_lr=nan must be a finite number > 0"),
        (
            lambda: Triangular(0.001, 0.01, 10, final_anneal=1),
            "final_anneal=1 must be a number in [0, 1) (a fraction of the run)",
        ),
        (lambda: Triangular("abc", 0.01, 10), "base_lr='abc' must be a finite number > 0"),
        (
            lambda: Triangular([0.001, 0.02], 0.01, 10),
            "base_lr=[0.001, 0.02] must be less than max_lr=0.01 (group 1: 0.02 >= 0.01)",
        ),
    ],
)
def test_error_messages(make, message: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


# --- plotting -----------------------------------------------------------------------------------------


def test_plot_schedule_draws_each_policy_and_group(tmp_path) -> None:
    fig = plot_schedule(
        {"tri": Triangular([0.001, 0.002], 0.006, step_size_epochs=2), "1cycle": OneCycle(0.005)},
        num_steps=300,
        base_momentum=0.85,
        max_momentum=0.95,
        steps_per_epoch=25,
        title="schedules",
    )
    assert isinstance(fig, Figure)
    lr_axis, momentum_axis = fig.axes
    assert len(lr_axis.lines) == 3  # two param groups of "tri", one of "1cycle"
    assert len(momentum_axis.lines) == 2
    assert max(lr_axis.lines[0].get_ydata()) == pytest.approx(0.006)
    path = tmp_path / "schedule.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_schedule_single_policy_and_errors() -> None:
    fig = plot_schedule(Triangular(0.001, 0.006, 50), 200)
    assert len(fig.axes) == 1
    assert [line.get_label() for line in fig.axes[0].lines] == ["triangular"]
    with pytest.raises(
        ValueError,
        match=r"^step_size_epochs=2.0 needs the optimizer steps per epoch, but steps_per_epoch=None",
    ):
        plot_schedule(Triangular(0.001, 0.006, step_size_epochs=2), 200)
    with pytest.raises(ValueError, match=r"^base_momentum=0.85 "):
        plot_schedule(Triangular(0.001, 0.006, 50), 200, base_momentum=0.85)


# --- the baselines users compare against: cosine and warmup-stable-decay -------------------------------


def test_cosine_matches_torchs_cosine_annealing() -> None:
    from lightning_clr.policies import Cosine

    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=99, eta_min=0.001)
    ours = Cosine(0.1, total_steps=100, final_lr_ratio=0.01)
    torchs = []
    for _ in range(100):
        torchs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [ours(k) for k in range(100)] == pytest.approx(torchs, rel=1e-9)


def test_warmup_cosine_rises_linearly_then_follows_the_cosine() -> None:
    from lightning_clr.policies import Cosine

    policy = Cosine([0.1, 0.01], total_steps=40, warmup=0.1)  # 4 warmup steps, per-group peaks
    assert [policy(k) for k in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    decay = [0.1 * (1 + math.cos(math.pi * (k - 4) / 35)) / 2 for k in range(4, 40)]
    assert [policy(k) for k in range(4, 40)] == pytest.approx(decay, rel=1e-12)
    assert policy(39, 1) == 0.0 and policy(4, 1) == pytest.approx(0.01)
    assert policy.end_phase_start() == 4


@pytest.mark.parametrize("shape", ["linear", "1-sqrt", "cosine"])
def test_wsd_warms_up_holds_and_cools_down_by_its_shape(shape: str) -> None:
    from lightning_clr.policies import WSD

    decay = {
        "linear": lambda p: 1 - p,
        "1-sqrt": lambda p: 1 - math.sqrt(p),
        "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
    }[shape]
    policy = WSD(0.2, total_steps=200, warmup=0.05, cooldown=0.2, cooldown_shape=shape, final_lr_ratio=0.1)
    expected = (
        [0.2 * (k + 1) / 10 for k in range(10)]
        + [0.2] * 150
        + [0.02 + 0.18 * decay((k - 160 + 1) / 40) for k in range(160, 200)]
    )
    assert [policy(k) for k in range(200)] == pytest.approx(expected, rel=1e-12)
    assert policy(199) == pytest.approx(0.02) and policy.end_phase_start() == 160
    assert [policy.momentum_scale(k) for k in (9, 100, 199)] == pytest.approx([1.0, 1.0, 0.0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: __import__("lightning_clr.policies").policies.WSD(0.1, warmup=0.5, cooldown=0.5),
            "cooldown=0.5 and warmup=0.5 must add up to less than 1",
        ),
        (
            lambda: __import__("lightning_clr.policies").policies.WSD(0.1, cooldown_shape="sqrt"),
            "cooldown_shape='sqrt' must be one of linear, 1-sqrt, cosine",
        ),
        (
            lambda: __import__("lightning_clr.policies").policies.Cosine(0.1, warmup=1.0),
            "warmup=1.0 must be a number in [0, 1)",
        ),
        (
            lambda: __import__("lightning_clr.policies").policies.Cosine(0.1)(3),
            "total_steps=None, which must be resolved first",
        ),
    ],
)
def test_cosine_and_wsd_reject_bad_arguments(make, message: str) -> None:
    with pytest.raises((ValueError, RuntimeError), match=re.escape(message)):
        make()


def test_wsd_and_cosine_through_the_callback_take_the_runs_length() -> None:
    from lightning_clr import CyclicLR
    from lightning_clr.policies import WSD, Cosine
    from tests.test_callback import Recorder, fit

    for policy in (WSD(0.1), Cosine(0.1, warmup=0.1)):
        recorder = Recorder()
        fit([CyclicLR(policy), recorder], max_epochs=3)  # 30 steps
        resolved = policy.resolve(None, 30)
        assert [lrs[0] for lrs in recorder.lrs] == [resolved(k) for k in range(30)]
