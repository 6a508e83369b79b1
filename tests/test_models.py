"""Networks: shapes and hand-counted parameters; ClassificationModule: a real (tiny) Lightning fit."""

from __future__ import annotations

import csv
import math
from functools import partial

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr.app.models import (
    MLP,
    CifarFull,
    ClassificationModule,
    ResNet,
    ResNet20,
    SmallCNN,
    WithinChannelLRN,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- networks ---------------------------------------------------------------------------------------------

SHAPES = [(1, 40), (1, 8, 8), (1, 28, 28), (3, 32, 32)]
IMAGE_SHAPES = [s for s in SHAPES if len(s) == 3]


@pytest.mark.parametrize(
    ("make_net", "input_shape"),
    [(MLP, s) for s in SHAPES]
    + [(SmallCNN, s) for s in SHAPES]
    + [(CifarFull, s) for s in IMAGE_SHAPES]
    + [(ResNet20, s) for s in IMAGE_SHAPES],
)
def test_output_shape(make_net, input_shape):
    torch.manual_seed(0)
    net = make_net(input_shape=input_shape, num_classes=7)
    assert net(torch.randn(5, *input_shape)).shape == (5, 7)
    assert net.num_classes == 7


def test_small_cnn_1d_is_the_mnist1d_paper_cnn():
    net = SmallCNN(input_shape=(1, 40), num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)),
        (25, 25, (3,), (2,), (1,)),
        (25, 25, (3,), (2,), (1,)),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    assert (net.head.in_features, net.head.out_features) == (125, 10)  # 25 channels x length 5
    assert [n_params(c) for c in convs] == [1 * 25 * 5 + 25, 25 * 25 * 3 + 25, 25 * 25 * 3 + 25]
    assert n_params(net.head) == 125 * 10 + 10
    assert n_params(net) == 150 + 1900 + 1900 + 1260 == 5210


def test_small_cnn_accepts_flat_mnist1d_samples():
    torch.manual_seed(0)
    net = SmallCNN(input_shape=(1, 40), num_classes=10)
    x = torch.randn(4, 40)
    torch.testing.assert_close(net(x), net(x.unsqueeze(1)))


def test_small_cnn_2d_layer_sizes():
    assert SmallCNN(input_shape=(1, 8, 8), num_classes=10).head.in_features == 25 * 1 * 1
    assert SmallCNN(input_shape=(1, 28, 28), num_classes=10).head.in_features == 25 * 4 * 4
    assert SmallCNN(input_shape=(3, 32, 32), num_classes=10, channels=8).head.in_features == 8 * 4 * 4


def test_cifar_full_matches_the_caffe_prototxt():
    net = CifarFull()
    conv1, conv2, conv3 = (net.features.get_submodule(n) for n in ("conv1", "conv2", "conv3"))
    assert n_params(conv1) == 3 * 32 * 5 * 5 + 32 == 2432
    assert n_params(conv2) == 32 * 32 * 5 * 5 + 32 == 25632
    assert n_params(conv3) == 32 * 64 * 5 * 5 + 64 == 51264
    assert n_params(net.ip1) == 64 * 4 * 4 * 10 + 10 == 10250
    assert n_params(net) == 2432 + 25632 + 51264 + 10250 == 89578
    assert list(net.features._modules) == [
        "conv1", "pool1", "relu1", "norm1", "conv2", "relu2", "pool2", "norm2", "conv3", "relu3", "pool3",
        "flatten",
    ]  # fmt: skip

    sizes = {}
    for name in ("pool1", "pool2", "pool3"):
        net.features.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: sizes.update({name: tuple(out.shape[1:])})
        )
    net(torch.randn(1, 3, 32, 32))
    # Caffe rounds pooling output up: ceil((32 - 3) / 2) + 1 = 16, then 8, then 4.
    assert sizes == {"pool1": (32, 16, 16), "pool2": (32, 8, 8), "pool3": (64, 4, 4)}


def test_within_channel_lrn_matches_caffe_formula():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6) * 50
    alpha, beta, size = 5e-5, 0.75, 3
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    expected = torch.empty_like(x)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            window = padded[:, :, i : i + size, j : j + size]
            expected[:, :, i, j] = x[:, :, i, j] / (1 + alpha / size**2 * window.square().sum((2, 3))) ** beta
    torch.testing.assert_close(WithinChannelLRN(size, alpha, beta)(x), expected)


def test_resnet20_parameter_count_and_option_a_shortcuts():
    net = ResNet20()
    # 19 3x3 convs (no biases) + 19 batch norms + the head; option-A shortcuts add nothing.
    convs = 3 * 16 * 9 + 6 * 16 * 16 * 9 + (16 * 32 + 5 * 32 * 32) * 9 + (32 * 64 + 5 * 64 * 64) * 9
    norms = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert n_params(net) == convs + norms + 64 * 10 + 10 == 269_722  # "0.27M" in He et al. (2016), Table 6
    assert all(m.kernel_size == (3, 3) for m in net.modules() if isinstance(m, nn.Conv2d))
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) + 1 == 20  # + the fc layer


@pytest.mark.parametrize(("depth", "millions"), [(32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_resnet_depths_match_the_paper(depth, millions):
    assert math.isclose(n_params(ResNet(depth=depth)) / 1e6, millions, rel_tol=0.02)


@pytest.mark.parametrize(
    ("make_net", "message"),
    [
        (lambda: MLP(input_shape=(1, 40), num_classes=1), "num_classes=1 must be at least 2"),
        (lambda: MLP(input_shape=(1, 40), num_classes=10, dropout=1.0), "dropout=1.0 must be in [0, 1)"),
        (lambda: MLP(input_shape=(1, 40), num_classes=10, hidden_sizes=(8, 0)), "hidden_sizes=(8, 0) "),
        (lambda: SmallCNN(input_shape=(40,), num_classes=10), "input_shape=(40,) must have 2 or 3 "),
        (lambda: SmallCNN(input_shape=(1, 40), num_classes=10, channels=0), "channels=0 must be positive"),
        (lambda: CifarFull(input_shape=(1, 40)), "input_shape=(1, 40) must have 3 "),
        (lambda: ResNet(depth=21), "depth=21 must be 6n + 2"),
    ],
)
def test_invalid_arguments_name_the_argument(make_net, message):
    with pytest.raises(ValueError) as error:
        make_net()
    assert str(error.value).startswith(message)


def test_hydra_instantiates_networks_from_list_configs():
    net = instantiate(
        {"_target_": "lightning_clr.app.models.MLP", "hidden_sizes": [16]},
        input_shape=[1, 8, 8],
        num_classes=10,
    )
    assert net.input_shape == (1, 8, 8)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    model = instantiate(
        {
            "_target_": "lightning_clr.app.models.ClassificationModule",
            "net": {
                "_target_": "lightning_clr.app.models.SmallCNN",
                "input_shape": [1, 40],
                "num_classes": 10,
            },
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3e-3},
        }
    )
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 3e-3


# --- ClassificationModule -----------------------------------------------------------------------------------

INPUT_SHAPE, NUM_CLASSES, BATCH_SIZE, EPOCHS = (1, 16), 4, 32, 4
METRICS = {"train_loss", "train_acc", "val_loss", "val_acc", "val_acc_best"}


def blobs_loaders() -> tuple[DataLoader, DataLoader]:
    """Four Gaussian blobs in 16 dimensions, ~98% separable: 384 training and 128 validation samples."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(NUM_CLASSES, *INPUT_SHAPE, generator=g)
    y = torch.randint(NUM_CLASSES, (512,), generator=g)
    x = centers[y] + torch.randn(512, *INPUT_SHAPE, generator=g)
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=BATCH_SIZE, shuffle=True)
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=BATCH_SIZE)
    return train, val


def make_module() -> ClassificationModule:
    return ClassificationModule(
        MLP(input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES, hidden_sizes=(32,)),
        optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9),
    )


def make_trainer(**kwargs) -> L.Trainer:
    options = dict(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**(options | kwargs))


@pytest.fixture(scope="module")
def fitted() -> tuple[L.Trainer, ClassificationModule, dict[str, float]]:
    L.seed_everything(0, verbose=False)
    model = make_module()
    train, val = blobs_loaders()
    (untrained,) = make_trainer().validate(model, val, verbose=False)
    trainer = make_trainer()
    trainer.fit(model, train, val)
    return trainer, model, untrained


def test_fit_learns_and_logs_the_contract_metrics(fitted):
    trainer, _, untrained = fitted
    assert untrained["val_acc"] < 0.5  # chance is 0.25
    metrics = trainer.callback_metrics
    assert set(metrics) >= METRICS
    assert metrics["val_acc"] >= 0.95
    assert metrics["train_acc"] >= 0.95
    assert metrics["val_acc_best"] >= metrics["val_acc"]
    assert metrics["val_loss"] < untrained["val_loss"] / 5
    assert set(trainer.progress_bar_metrics) == {"train_loss", "val_acc"}


def test_checkpoint_restores_weights_with_a_weights_only_load(fitted, tmp_path):
    trainer, model, _ = fitted
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=True)["hyper_parameters"] == {"num_classes": NUM_CLASSES}
    restored = ClassificationModule.load_from_checkpoint(
        path,
        net=MLP(input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES, hidden_sizes=(32,)),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
    )
    assert restored.hparams.num_classes == NUM_CLASSES
    assert isinstance(restored.configure_optimizers(), torch.optim.Adam)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], tensor)


def test_one_forward_per_step_and_per_step_loss_logging(tmp_path):
    L.seed_everything(0, verbose=False)
    model = make_module()
    forwards = []
    model.net.register_forward_hook(lambda *_: forwards.append(1))
    logger = CSVLogger(tmp_path, name="", version="")
    trainer = make_trainer(max_epochs=2, logger=logger, log_every_n_steps=1, num_sanity_val_steps=2)
    trainer.fit(model, *blobs_loaders())

    train_batches, val_batches = 384 // BATCH_SIZE, 128 // BATCH_SIZE
    assert len(forwards) == 2 + 2 * (train_batches + val_batches)  # sanity check + 2 epochs
    with open(tmp_path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    logged = {key: [float(r[key]) for r in rows if r.get(key)] for key in METRICS}
    assert len(logged["train_loss"]) == 2 * train_batches
    assert all(len(logged[key]) == 2 for key in METRICS - {"train_loss"})
    assert logged["val_acc_best"] == [logged["val_acc"][0], max(logged["val_acc"])]


def test_test_step_logs_test_metrics(fitted):
    trainer, model, _ = fitted
    (results,) = trainer.test(model, blobs_loaders()[1], verbose=False)
    assert set(results) == {"test_loss", "test_acc"}
    assert results["test_acc"] >= 0.95


def test_num_classes_and_default_optimizer():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"^num_classes=None must be given"):
        ClassificationModule(net)
    model = ClassificationModule(net, num_classes=3)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.01
    assert ClassificationModule(MLP(input_shape=(1, 16), num_classes=5)).hparams.num_classes == 5
