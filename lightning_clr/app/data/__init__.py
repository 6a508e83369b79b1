"""One LightningDataModule per data set, all holding their tensors in memory.

``mnist1d`` (generated locally, the default) and ``digits`` (bundled with scikit-learn) need no network;
MNIST, Fashion-MNIST and CIFAR-10/100 are read from ``data_dir`` and downloaded there when missing.
Every module exposes ``input_shape`` and ``num_classes`` right after construction.

Example::

    >>> from lightning_clr.app.data import DigitsDataModule
    >>> dm = DigitsDataModule(batch_size=32)
    >>> dm.input_shape, dm.num_classes
    ((1, 8, 8), 10)
"""

from lightning_clr.app.data.base import ClassificationDataModule, DataFileError, DatasetMissingError, Splits
from lightning_clr.app.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lightning_clr.app.data.digits import DigitsDataModule
from lightning_clr.app.data.mnist import FashionMNISTDataModule, MNISTDataModule
from lightning_clr.app.data.mnist1d import MNIST1DDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "ClassificationDataModule",
    "DataFileError",
    "DatasetMissingError",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "MNIST1DDataModule",
    "MNISTDataModule",
    "Splits",
]
