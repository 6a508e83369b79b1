"""``ClassificationModule``: the one LightningModule that trains any network of :mod:`.networks`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["ClassificationModule"]

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
Batch = tuple[torch.Tensor, torch.Tensor]


class ClassificationModule(LightningModule):
    """Train ``net`` with cross-entropy and report accuracy; the learning rate is left to ``CyclicLR``.

    Logs :attr:`FIT_METRICS` (``val_acc_best``: the best ``val_acc`` so far), and ``test_loss`` and
    ``test_acc`` when testing; accuracy is micro-averaged.

    Args:
        net: the network; its logits have shape ``(N, num_classes)``.
        optimizer: called on the parameters to build the optimizer, typically a ``functools.partial``
            (Hydra ``_partial_: true``). Defaults to SGD with ``lr=0.01``.
        num_classes: number of classes; defaults to ``net.num_classes``.

    Raises:
        ValueError: if ``num_classes`` is not given and ``net`` has no ``num_classes`` attribute.

    Example::

        >>> from functools import partial
        >>> from lightning_clr.app.models import MLP
        >>> model = ClassificationModule(
        ...     MLP(input_shape=(1, 40), num_classes=10),
        ...     optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        ... )
        >>> type(model.configure_optimizers()).__name__
        'SGD'

    A checkpoint holds the weights and ``num_classes``; the network (and the optimizer, to train further) are
    passed again::

        model = ClassificationModule.load_from_checkpoint(path, net=MLP(input_shape=(1, 40), num_classes=10))
    """

    #: Metrics logged in ``validation_step``: what an LR range test can monitor besides the training loss.
    VALIDATION_METRICS = ("val_loss", "val_acc")
    #: Every metric logged while fitting: what a checkpoint, early stopping or a sweeper can monitor.
    FIT_METRICS = ("train_loss", "train_acc", *VALIDATION_METRICS, "val_acc_best")

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        num_classes = getattr(net, "num_classes", None) if num_classes is None else num_classes
        if num_classes is None:
            name = type(net).__name__
            raise ValueError(
                f"num_classes=None must be given when the net has no num_classes attribute ({name})"
            )
        # plain values only, for torch.load(weights_only=True): the net is in the state_dict, the optimizer
        # in the Hydra config
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        self.hparams["num_classes"] = num_classes
        self.net = net
        self.optimizer_factory = optimizer

        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), logits, y

    def on_train_start(self) -> None:
        # Forget what the sanity-check validation saw before any training.
        self.val_acc_best.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, logits, y = self._step(batch)
        self.train_acc.update(logits, y)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, logits, y = self._step(batch)
        self.val_acc.update(logits, y)
        self.log("val_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log("val_acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.val_acc.compute())
        self.log("val_acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        loss, logits, y = self._step(batch)
        self.test_acc.update(logits, y)
        self.log("test_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log("test_acc", self.test_acc, on_step=False, on_epoch=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        make_optimizer = self.optimizer_factory or partial(torch.optim.SGD, lr=0.01)
        return make_optimizer(self.parameters())
