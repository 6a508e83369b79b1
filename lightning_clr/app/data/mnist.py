"""MNIST and Fashion-MNIST from the four IDX files, in torchvision's ``<data_dir>/<Name>/raw/`` layout."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import torch

from lightning_clr.app.data.base import (
    ClassificationDataModule,
    DataFileError,
    Splits,
    check_fraction,
    check_mirrors,
    random_split,
)
from lightning_clr.app.data.download import fetch_missing

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_RESOURCES = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
)
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_MNIST_RESOURCES = (
    ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)

# IDX type byte -> big-endian element type (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``) into a native-endian array.

    Raises:
        DataFileError: the file is not gzip when it should be, has a bad magic number, or its size does not
            match the dimensions in its header.

    Example::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    fix = "delete it so it is downloaded again"
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as file:
            data = file.read()
    except (EOFError, gzip.BadGzipFile) as err:
        raise DataFileError(f"{path} is not a valid gzip file ({err}); {fix}") from err
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise DataFileError(f"{path} is not an IDX file (magic number 0x{data[:4].hex()}); {fix}")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise DataFileError(f"{path} is truncated inside its IDX header; {fix}")
    shape = struct.unpack(f">{data[3]}I", data[4:header])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DataFileError(
            f"{path} is corrupt: its header says {shape} of {dtype.name} ({expected} bytes) "
            f"but it holds {len(data)} bytes; {fix}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class MNISTDataModule(ClassificationDataModule):
    """MNIST handwritten digits (LeCun et al. 1998): 60,000 train / 10,000 test 28x28 images, 10 classes.

    Reads (or downloads) the IDX files in torchvision's ``<data_dir>/MNIST/raw/`` layout; images normalised.

    Args:
        val_split: hold out this fraction of the training set for validation instead of the test set.
        mirrors: base URLs the files are fetched from, tried in turn (default :data:`MNIST_MIRRORS`).
        data_dir, batch_size, num_workers, seed, download: see :class:`ClassificationDataModule`.

    Example::

        dm = MNISTDataModule(data_dir="data", batch_size=128)
        dm.prepare_data()  # downloads ~11 MB into data/MNIST/raw once
        dm.setup()
        images, labels = next(iter(dm.train_dataloader()))  # (128, 1, 28, 28) float32, (128,) int64
    """

    name = "MNIST"
    folder = "MNIST"
    default_mirrors: tuple[str, ...] = MNIST_MIRRORS
    resources: tuple[tuple[str, str], ...] = MNIST_RESOURCES
    mean, std = 0.1307, 0.3081
    input_shape = (1, 28, 28)
    num_classes = 10

    options = {"val_split": (None, check_fraction), "mirrors": (None, check_mirrors)}
    val_split: float | None
    mirrors: tuple[str, ...] | None  # None: default_mirrors

    @property
    def raw_dir(self) -> Path:
        """The folder holding the four IDX files."""
        return self.data_dir / self.folder / "raw"

    def prepare_data(self) -> None:
        """Download the missing IDX files (when ``download`` is true)."""
        missing = [(name, md5) for name, md5 in self.resources if self._find(name) is None]
        if missing:
            mirrors = self.mirrors or self.default_mirrors
            fetch_missing(self.name, self.raw_dir, [n for n, _ in missing], missing, mirrors, self.download)

    def load_splits(self) -> Splits:
        """Read the IDX files into normalised tensors."""
        self.prepare_data()
        train_x, train_y = self._read_pair("train")
        if self.val_split is not None:
            train, val = random_split(len(train_y), self.val_split, self.seed)
            return Splits(train_x[train], train_y[train], train_x[val], train_y[val])
        return Splits(train_x, train_y, *self._read_pair("t10k"))

    def _find(self, filename: str) -> Path | None:
        """``filename`` (a ``.gz`` name) or its uncompressed twin, whichever is in ``raw_dir``."""
        paths = (self.raw_dir / filename, self.raw_dir / filename.removesuffix(".gz"))
        return next((path for path in paths if path.is_file()), None)

    def _read_pair(self, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        images_path = self._find(f"{prefix}-images-idx3-ubyte.gz")
        labels_path = self._find(f"{prefix}-labels-idx1-ubyte.gz")
        assert images_path is not None and labels_path is not None  # prepare_data checked
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != self.input_shape[1:]:
            raise DataFileError(
                f"{images_path} holds images of shape {images.shape[1:]}, expected {self.input_shape[1:]}"
            )
        if labels.shape != (len(images),) or labels.max(initial=0) >= self.num_classes:
            raise DataFileError(
                f"{labels_path} holds {labels.shape} labels up to {labels.max(initial=0)}, expected "
                f"({len(images)},) labels below {self.num_classes} to match {images_path.name}"
            )
        x = torch.from_numpy(images).unsqueeze(1).float().div_(255).sub_(self.mean).div_(self.std)
        return x, torch.from_numpy(labels).long()


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al. 2017): Zalando clothing images in MNIST's format, 10 classes; as
    :class:`MNISTDataModule`, in ``<data_dir>/FashionMNIST/raw/``.
    """

    name = "Fashion-MNIST"
    folder = "FashionMNIST"
    default_mirrors = FASHION_MNIST_MIRRORS
    resources = FASHION_MNIST_RESOURCES
    mean, std = 0.2860, 0.3530
