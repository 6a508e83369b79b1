"""scripts/plot_policy.py: the schedule a config will train with, counted like the trainer counts it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lightning_clr.app.config import ConfigError
from lightning_clr.app.preview import planned_steps, preview
from lightning_clr.policies import OneCycle, Triangular
from tests.conftest import FAST, run_script


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], (6, 12)),  # FAST: 2 epochs of 6 batches
        (["trainer.accumulate_grad_batches=4"], (2, 4)),  # 6 batches, the last step takes 2
        (["trainer.max_steps=5"], (6, 5)),
        (["trainer.limit_train_batches=0.5"], (20, 40)),  # half of MNIST-1D's 40 batches
    ],
)
def test_planned_steps_count_like_the_trainer(
    compose_cfg: Callable[..., DictConfig], overrides: list[str], expected: tuple[int, int]
) -> None:
    assert planned_steps(compose_cfg(*overrides)) == expected


def test_preview_draws_the_resolved_schedule(compose_cfg: Callable[..., DictConfig]) -> None:
    fig = preview(compose_cfg("policy.step_size_epochs=0.5", "policy.cycle_momentum=true"))
    lr_axis, momentum_axis = fig.axes[:2]
    policy = Triangular(0.065, 0.2, 3, final_anneal=0.2, total_steps=12)  # half an epoch of 6 steps
    assert list(lr_axis.lines[0].get_ydata()) == pytest.approx([policy(k) for k in range(12)])
    momentum = [0.95 - 0.1 * policy.momentum_scale(k) for k in range(12)]
    assert list(momentum_axis.lines[0].get_ydata()) == pytest.approx(momentum)


def test_a_long_title_is_wrapped_to_fit_the_figure(compose_cfg: Callable[..., DictConfig]) -> None:
    fig = preview(compose_cfg("policy=exp_range", "policy.step_size=200"))
    lines = fig.get_suptitle().splitlines()
    assert len(lines) == 3 and max(map(len, lines)) <= 100


def test_preview_one_cycle_spans_the_run(compose_cfg: Callable[..., DictConfig]) -> None:
    fig = preview(compose_cfg("policy=one_cycle"))
    line = list(fig.axes[0].lines[0].get_ydata())
    assert len(line) == 12 and line.index(max(line)) == pytest.approx(0.3 * 11, abs=1)
    assert OneCycle.name in fig.get_suptitle()


def test_auto_bounds_cannot_be_previewed(compose_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match=r"^policy\.base_lr=auto: found by the LR range test"):
        preview(compose_cfg("policy.base_lr=auto"))


@pytest.mark.slow
def test_script_writes_the_png_into_the_run_dir(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    args = [*FAST, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", "policy=exp_range"]
    result = run_script("plot_policy.py", *args, "policy.step_size=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"wrote {run_dir / 'policy.png'}"
    assert (run_dir / "policy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (run_dir / "checkpoints").exists()  # nothing was trained
    # a preview only reads a run's folder: no config or log of its own replaces the run's
    assert sorted(path.name for path in run_dir.iterdir()) == ["policy.png"]


def test_preview_of_a_resume_draws_both_plans_and_the_resume_step(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    from lightning_clr.app.training import train

    common = ("dataset=digits", "model=mlp", "policy.step_size=5")
    train(compose_cfg(*common, "trainer.max_epochs=1"))
    fig = preview(compose_cfg(*common, "trainer.max_epochs=3", "ckpt_path=last"))
    old, new, mark = fig.axes[0].lines
    assert old.get_label() == "as planned (6 steps)" and new.get_label() == "resumed (18 steps)"
    assert list(new.get_ydata()) == pytest.approx(
        [Triangular(0.065, 0.2, 5, final_anneal=0.2, total_steps=18)(k) for k in range(18)]
    )
    assert list(old.get_ydata())[5:] == pytest.approx([0.00065] * 13)  # the old plan ends at its floor
    assert mark.get_label() == "resume at step 6" and list(mark.get_xdata()) == [6, 6]
    assert fig.get_suptitle().startswith("triangular resumed at step 6 of a run planned for 6")


def test_preview_of_a_resume_under_another_policy_draws_the_checkpoints_plan(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    from lightning_clr.app.training import train

    train(compose_cfg("dataset=digits", "model=mlp", "policy.step_size=5", "trainer.max_epochs=1"))
    with pytest.warns(UserWarning, match="trained with policy 'triangular'; continuing with the configured"):
        fig = preview(
            compose_cfg(
                "dataset=digits", "model=mlp", "policy=cosine", "trainer.max_epochs=3", "ckpt_path=last"
            )
        )
    old, new, _ = fig.axes[0].lines
    assert old.get_label() == "as planned (triangular, 6 steps)" and new.get_label() == "resumed (18 steps)"
    assert list(old.get_ydata())[:6] == pytest.approx(
        [Triangular(0.065, 0.2, 5, final_anneal=0.2, total_steps=6)(k) for k in range(6)]
    )


def test_preview_of_a_resume_without_a_checkpoint_says_so(compose_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match=r"^ckpt_path=last: no checkpoints/last.ckpt in this run's folder"):
        preview(compose_cfg("ckpt_path=last"))
