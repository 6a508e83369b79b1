"""The start-up checks that run before torch and Lightning are imported."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from lightning.pytorch import Trainer

from lightning_clr.app import schemas
from lightning_clr.app.checks import ConfigError, build_policy, check_run, check_trainer
from lightning_clr.policies import OneCycle, Triangular


def test_trainer_schema_read_from_source_equals_the_signature() -> None:
    from_source = schemas.trainer_schema()
    from_signature = schemas.schema_from_signature(
        "TrainerConfig", Trainer.__init__, ("callbacks", "logger"), "lightning.pytorch.Trainer"
    )
    fields = [(f.name, f.type, f.default) for f in dataclasses.fields(from_source)]
    assert fields == [(f.name, f.type, f.default) for f in dataclasses.fields(from_signature)]
    assert len(fields) > 30


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"accumulate_grad_batches": 0}, "trainer.accumulate_grad_batches=0 must be an integer >= 1"),
        ({"val_check_interval": 1.5}, "trainer.val_check_interval=1.5 must be a fraction of an epoch"),
        ({"log_every_n_steps": True}, "trainer.log_every_n_steps=True must be an integer >= 1"),
        ({"gradient_clip_val": float("nan")}, "trainer.gradient_clip_val=nan must be a number >= 0"),
        ({"deterministic": "sometimes"}, "trainer.deterministic='sometimes' must be true, false or 'warn'"),
        ({"max_steps": 0}, "trainer.max_steps=0 trains nothing"),
    ],
)
def test_bad_trainer_values(trainer: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_trainer(trainer)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "trainer",
    [
        {"max_epochs": 20, "devices": "auto", "precision": "16-mixed", "gradient_clip_val": 0.5},
        {"max_epochs": -1, "max_steps": 100, "devices": "0,1", "val_check_interval": 0.25},
        {"devices": 2, "accelerator": "cpu", "limit_train_batches": 6, "deterministic": "warn"},
        {"precision": 32, "val_check_interval": 50, "check_val_every_n_epoch": None},
        {"accelerator": "xla", "precision": "transformer-engine", "devices": [0, -3]},  # Lightning's to say
    ],
)
def test_good_trainer_values(trainer: dict) -> None:
    check_trainer(trainer, OneCycle(0.1))


def test_an_endless_run_is_fine_for_a_policy_that_needs_no_length() -> None:
    check_trainer({"max_epochs": -1, "max_steps": -1}, Triangular(0.001, 0.006, step_size=10))
    with pytest.raises(ConfigError, match="needs the run's length"):
        check_trainer({"max_epochs": -1, "max_steps": -1}, OneCycle(0.1))


def test_the_policy_group_builds_without_lightning() -> None:
    policy, pending, momentum = build_policy(
        {
            "_target_": "lightning_clr.policies.Triangular",
            "base_lr": 0.1,
            "max_lr": "auto",
            "step_size": 4,
            "step_size_epochs": 2,
            "cycle_momentum": True,
        }
    )
    assert pending == ["max_lr"] and momentum == {"cycle_momentum": True}
    assert policy == Triangular(0.1, 0.4, step_size=4)  # an explicit step size beats step_size_epochs


def test_a_bad_value_is_found_before_torch_or_lightning_is_imported() -> None:
    code = (
        "import sys; from lightning_clr.app.cli import override_error; "
        "assert override_error(['range_test.mode=cubic']) is None; "  # composes: the schemas are registered
        "from lightning_clr.app.checks import check_run, ConfigError\n"
        "try: check_run({'seed': 1, 'range_test': {'mode': 'cubic'}})\n"
        "except ConfigError as error: print(error)\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [
        "range_test.mode='cubic' must be one of ('linear', 'exponential')",
        "[]",
    ]


def test_the_range_test_span_is_checked_where_the_test_runs() -> None:
    """100 x optimizer.lr must lie above range_test.min_lr: for clr-range-test, and for an ``auto`` bound."""
    cfg = {"seed": 1, "optimizer": {"lr": 1e-7}, "range_test": {}}
    assert check_run(cfg) is None  # a run that never tests may start from a tiny LR
    with pytest.raises(ConfigError, match=r"^range_test.max_lr=null spans up to 100 x optimizer.lr=1e-07"):
        check_run(cfg, runs_range_test=True)
    auto = {
        "_target_": "lightning_clr.policies.Triangular",
        "base_lr": 0.1,
        "max_lr": "auto",
        "step_size": 10,
    }
    with pytest.raises(ConfigError, match=r"range_test\.min_lr=0\.0001"):
        check_run({**cfg, "policy": auto})
    check_run({**cfg, "range_test": {"max_lr": 0.1}}, runs_range_test=True)  # a span given: fine


def test_every_bad_value_is_named_at_once() -> None:
    cfg = {
        "seed": "x",
        "policy": {
            "_target_": "lightning_clr.policies.Triangular",
            "base_lr": 0.1,
            "max_lr": 1,
            "step_size": "abc",
        },
        "optimizer": {"lr": -1, "momentum": 2},
    }
    with pytest.raises(ConfigError) as raised:
        check_run(cfg)
    assert str(raised.value).splitlines() == [
        "seed='x' must be an integer in [0, 4294967295]",
        "policy.step_size='abc' must be an integer >= 1",
        "optimizer.momentum=2 must be a number in [0, 1)",
    ]


def test_an_unknown_option_lists_what_users_can_choose() -> None:
    from lightning_clr.app.cli import override_error

    assert override_error(["trainer=nosuch"]) == (
        "trainer=nosuch is not a config of group 'trainer'; choose one of: default"  # not the app's schema
    )
