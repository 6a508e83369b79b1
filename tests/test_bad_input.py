"""Bad configurations and arguments: each exits non-zero with one line naming key, value and rule.

The table runs in-process through the real entry point (``cli.hydra_app(training.main)`` with a patched
``sys.argv``), so it costs no interpreter start-up per row; a few rows also run as real subprocesses.
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_clr.app.cli import hydra_app
from lightning_clr.app.data.cifar import CIFAR10DataModule
from lightning_clr.app.models import MLP, ClassificationModule
from lightning_clr.app.training import main
from tests.conftest import FAST, run_script
from tests.test_data import write_cifar, write_mnist

ADAGRAD = ["optimizer._target_=torch.optim.Adagrad", "~optimizer.momentum", "~optimizer.nesterov"]
STREAM = ["dataset._target_=tests.fault_helpers.StreamDataModule", "trainer.limit_train_batches=1.0"]
NO_MIRROR = ["dataset=mnist", "+dataset.mirrors=[file:///nonexistent/mirror/]"]

#: (overrides, the start of the one-line message after "error: "); ``{tmp}`` is the test's tmp_path.
BAD = {
    "negative base_lr": (["policy.base_lr=-0.1"], "policy.base_lr=-0.1 "),
    "negative max_lr": (["policy.max_lr=-1"], "policy.max_lr=-1"),
    "inverted bounds": (["policy.base_lr=0.5", "policy.max_lr=0.01"], "policy.base_lr=0.5 must be less than"),
    "zero step_size": (["policy.step_size=0"], "policy.step_size=0 "),
    "negative step_size": (["policy.step_size=-5"], "policy.step_size=-5 "),
    "zero step_size_epochs": (["policy.step_size_epochs=0"], "policy.step_size_epochs=0 "),
    "negative step_size_epochs": (["policy.step_size_epochs=-2"], "policy.step_size_epochs=-2 "),
    "gamma above 1": (["policy=exp_range", "policy.gamma=1.5"], "policy.gamma=1.5 "),
    "gamma zero": (["policy=exp_range", "policy.gamma=0"], "policy.gamma=0 "),
    "gamma negative": (["policy=exp_range", "policy.gamma=-0.5"], "policy.gamma=-0.5 "),
    "unknown policy": (["policy=sigmoid"], "policy=sigmoid is not a config of group 'policy'; choose"),
    "unknown dataset": (["dataset=imagenet"], "dataset=imagenet is not a config of group 'dataset'; choose"),
    "unknown model": (["model=resnet9000"], "model=resnet9000 is not a config of group 'model'; choose"),
    "unknown strategy": (
        ["strategy=tpu_pod"],
        "strategy=tpu_pod is not a config of group 'strategy'; choose",
    ),
    "mistyped policy key": (
        ["policy.step_sise=4"],
        "policy.step_sise: policy has no key 'step_sise'; did you mean policy.step_size?",
    ),
    "mistyped trainer key": (["trainer.max_epoch=3"], "trainer.max_epoch: trainer has no key 'max_epoch'"),
    "non-numeric max_epochs": (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: Value 'abc' of type"),
    "unknown range-test mode": (["range_test.mode=cubic"], "range_test.mode='cubic' must be one of"),
    "range-test span below min_lr": (
        ["optimizer.lr=1e-7", "policy.base_lr=auto", "policy.max_lr=auto"],
        "range_test.max_lr=null spans up to 100 x optimizer.lr=1e-07, 1e-05, not above range_test.min_lr",
    ),
    "non-numeric optimizer lr": (["optimizer.lr=abc"], "optimizer.lr='abc' must be a positive number"),
    "non-numeric bound": (["policy.base_lr=abc"], "policy.base_lr='abc' "),
    "non-numeric step_size": (["policy.step_size=ten"], "policy.step_size='ten' "),
    "non-numeric batch_size": (["dataset.batch_size=many"], "dataset.batch_size='many' "),
    "non-numeric seed": (["seed=abc"], "seed='abc' must be an integer"),
    "inverted momentum": (
        ["policy.base_momentum=0.99", "policy.max_momentum=0.9"],
        "policy.base_momentum=0.99 ",
    ),
    "non-boolean cycle_momentum": (
        ["policy.cycle_momentum=maybe"],
        "policy.cycle_momentum='maybe' must be true",
    ),
    "cycle_momentum without momentum": (
        ["policy.cycle_momentum=true", *ADAGRAD],
        "policy.cycle_momentum=True needs a momentum to cycle, but Adagrad has none",
    ),
    "step_size_epochs, loader of unknown length": (
        STREAM,
        "policy.step_size_epochs=2.5 needs the optimizer steps per epoch",
    ),
    "data set missing, no download": (["dataset=mnist", "dataset.download=false"], "dataset: MNIST"),
    "data set missing, download impossible": (NO_MIRROR, "dataset: MNIST"),
    "unknown guard action": (
        ["callbacks.non_finite_guard.action=ignore"],
        "callbacks.non_finite_guard.action=",
    ),
    "missing checkpoint": (["ckpt_path=/nonexistent.ckpt"], "ckpt_path='/nonexistent.ckpt' is not a file"),
    "corrupt checkpoint": (
        ["ckpt_path={tmp}/corrupt.ckpt"],
        "ckpt_path='{tmp}/corrupt.ckpt' is not a readable",
    ),
    "not a Lightning checkpoint": (
        ["ckpt_path={tmp}/plain.ckpt"],
        "ckpt_path='{tmp}/plain.ckpt' is not a Lightning",
    ),
    "text file as checkpoint": (
        ["ckpt_path={tmp}/notes.txt"],
        "ckpt_path='{tmp}/notes.txt' is not a checkpoint",
    ),
    "checkpoint of another model": (
        ["ckpt_path={tmp}/mlp.ckpt"],
        "ckpt_path='{tmp}/mlp.ckpt' holds the weights of another model",
    ),
    "one_cycle without end": (
        ["policy=one_cycle", "trainer.max_epochs=-1"],
        "trainer.max_epochs=-1 with max_steps=-1 trains without end, but policy one_cycle needs",
    ),
    "zero max_epochs": (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    "zero accumulate_grad_batches": (
        ["trainer.accumulate_grad_batches=0"],
        "trainer.accumulate_grad_batches=0 must be an integer >= 1",
    ),
    "zero val_check_interval": (["trainer.val_check_interval=0"], "trainer.val_check_interval=0 must be"),
    "val_check_interval above 1.0": (
        ["trainer.val_check_interval=1.5"],
        "trainer.val_check_interval=1.5 must",
    ),
    "zero check_val_every_n_epoch": (
        ["trainer.check_val_every_n_epoch=0"],
        "trainer.check_val_every_n_epoch=0 must be an integer >= 1",
    ),
    "negative gradient_clip_val": (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val=-1 must be"),
    "unknown gradient_clip_algorithm": (
        ["trainer.gradient_clip_algorithm=clip"],
        "trainer.gradient_clip_algorithm='clip': `gradient_clip_algorithm` clip is invalid",
    ),
    "zero log_every_n_steps": (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps=0 must be"),
    "limit_train_batches above 1.0": (
        ["trainer.limit_train_batches=1.5"],
        "trainer.limit_train_batches=1.5: You have passed invalid value 1.5 for limit_train_batches",
    ),
    "unknown precision": (["trainer.precision=17"], "trainer.precision=17: Precision 17 is invalid. Allowed"),
    "unknown accelerator": (
        ["trainer.accelerator=abacus"],
        "trainer.accelerator='abacus': You selected an invalid accelerator name",
    ),
    "zero devices": (["trainer.devices=0"], "trainer.devices=0: `Trainer(devices=0)` value is not a valid"),
    "negative seed": (["seed=-1"], "seed=-1 must be an integer in [0, 4294967295]"),
    "run dir is a file": (["hydra.run.dir={tmp}/notes.txt"], "hydra.run.dir='{tmp}/notes.txt' is a file"),
    "run dir not writable": (
        ["hydra.run.dir=/proc/clr-run"],
        "hydra.run.dir='/proc/clr-run' cannot be written",
    ),
    "data dir not writable": (
        ["paths.data_dir=/proc/clr-data"],
        "paths.data_dir='/proc/clr-data' cannot be written",
    ),
    "data dir inside a file": (
        ["paths.data_dir={tmp}/notes.txt/data"],
        "paths.data_dir='{tmp}/notes.txt/data' lies inside the file",
    ),
    "range test watches an unknown metric": (
        ["policy.base_lr=auto", "range_test.monitor=val_accuracy"],
        "range_test.monitor='val_accuracy' is not a metric the test can watch; choose one of: loss, val_loss",
    ),
    "checkpoint watches an unknown metric": (
        ["callbacks.model_checkpoint.monitor=val_accuracy"],
        "callbacks.model_checkpoint.monitor='val_accuracy' is not a metric the model logs; choose one of:",
    ),
    "sweeper optimizes an unknown metric": (
        ["optimized_metric=val_accuracy"],
        "optimized_metric='val_accuracy' is not a metric the model logs",
    ),
    "final_anneal of the whole run": (
        ["policy.final_anneal=1.0"],
        "policy.final_anneal=1.0 must be a number in",
    ),
    "momentum of 1 or more": (["optimizer.momentum=2"], "optimizer.momentum=2 must be a number in [0, 1)"),
    "negative optimizer lr": (["optimizer.lr=-1"], "optimizer.lr=-1: Invalid learning rate: -1"),
    "betas out of range": (
        ["optimizer=adam", "optimizer.betas=[0.9,1.5]"],
        "optimizer.betas=[0.9, 1.5]: Invalid beta parameter at index 1: 1.5",
    ),
    "negative weight decay": (
        ["optimizer.weight_decay=-0.1"],
        "optimizer.weight_decay=-0.1: Invalid weight_decay value",
    ),
    "CIFAR-10 batch cut in half": (
        ["dataset=cifar10", "paths.data_dir={tmp}/cifar_data", "dataset.download=false"],
        "dataset: {tmp}/cifar_data/cifar-10-batches-py/data_batch_1 is not a CIFAR python batch",
    ),
    "MNIST file shorter than its header says": (
        ["dataset=mnist", "paths.data_dir={tmp}/mnist_data", "dataset.download=false"],
        "dataset: {tmp}/mnist_data/MNIST/raw/train-images-idx3-ubyte.gz is corrupt: its header says (60,",
    ),
    "max_lr not finite": (["policy.max_lr=inf"], "policy.max_lr=inf must be a finite number > 0"),
    "base_lr not a number": (["policy.base_lr=nan"], "policy.base_lr=nan must be a finite number > 0"),
    "a sweep without -m": (
        ["policy.step_size=40,80"],
        "policy.step_size=40,80 gives several values (a sweep): add -m",
    ),
}


def _argv(tmp_path: Path, data_dir: Path, overrides: list[str]) -> list[str]:
    _broken_data_files(tmp_path)
    (tmp_path / "corrupt.ckpt").write_bytes(b"PK\x03\x04 half a checkpoint")
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.ckpt")
    mlp = ClassificationModule(MLP(input_shape=(1, 40), num_classes=10))
    torch.save({"state_dict": mlp.state_dict(), "epoch": 0}, tmp_path / "mlp.ckpt")
    given = {o.split("=", 1)[0] for o in overrides}
    run = [f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'run'}"]
    run = [o for o in run if o.split("=", 1)[0] not in given]
    return [*FAST, *run, *(o.format(tmp=tmp_path) for o in overrides)]


def _assert_nothing_trained(run_dir: Path) -> None:
    assert not (run_dir / "checkpoints").exists()
    if (run_dir / "tensorboard").exists():
        accumulator = EventAccumulator(str(run_dir / "tensorboard"))
        accumulator.Reload()
        assert "lr" not in accumulator.Tags()["scalars"]


@pytest.mark.parametrize(("overrides", "message"), list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_with_one_line(
    overrides: list[str],
    message: str,
    tmp_path: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", *_argv(tmp_path, data_dir, overrides)])
    with pytest.raises(SystemExit) as exited:
        hydra_app(main)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: " + message.format(tmp=tmp_path)), last
    _assert_nothing_trained(tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["cycle_momentum without momentum", "data set missing, download impossible", "corrupt checkpoint"]
)
def test_bad_input_in_a_subprocess(case: str, tmp_path: Path, data_dir: Path) -> None:
    overrides, message = BAD[case]
    result = run_script("train.py", *_argv(tmp_path, data_dir, overrides), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: " + message.format(tmp=tmp_path))
    _assert_nothing_trained(tmp_path / "run")


def _broken_data_files(tmp_path: Path) -> None:
    """A CIFAR-10 whose first batch is cut in half; an MNIST whose images file says 60 and holds 10."""
    write_cifar(tmp_path / "cifar_data", CIFAR10DataModule)
    batch = tmp_path / "cifar_data" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[: batch.stat().st_size // 2])
    raw = tmp_path / "mnist_data" / "MNIST" / "raw"
    write_mnist(raw)
    images = raw / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(images.read_bytes())
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 60, 28, 28)
    images.write_bytes(gzip.compress(header + data[16 : 16 + 10 * 28 * 28]))
