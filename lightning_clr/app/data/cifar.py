"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the official python pickles, with optional augmentation."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_clr.app.data.base import ClassificationDataModule, DataFileError, Splits, check_mirrors
from lightning_clr.app.data.download import extract_tar, fetch_missing
from lightning_clr.validation import boolean

CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz/", "https://cave.cs.toronto.edu/kriz/")


def random_crop_flip(images: Tensor, padding: int = 4, fill: Sequence[float] | float = 0.0) -> Tensor:
    """The usual CIFAR augmentation on a whole ``(N, C, H, W)`` batch, with torch's global RNG: pad by
    ``padding`` pixels of ``fill`` (a scalar or one per channel), random crop back to size, random h-flip.

    Example::

        >>> _ = torch.manual_seed(0)
        >>> random_crop_flip(torch.rand(8, 3, 32, 32)).shape
        torch.Size([8, 3, 32, 32])
    """
    n, c, h, w = images.shape
    device = images.device
    fill_values = torch.as_tensor(fill, dtype=images.dtype, device=device).reshape(1, -1, 1, 1)
    padded = fill_values.expand(n, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding : padding + h, padding : padding + w] = images
    top = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
    left = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
    flip = torch.rand(n, 1, 1, device=device) < 0.5
    columns = torch.arange(w, device=device).view(1, 1, w)
    rows = top + torch.arange(h, device=device).view(1, h, 1)
    columns = left + torch.where(flip, w - 1 - columns, columns)
    crops = padded[torch.arange(n, device=device).view(n, 1, 1), :, rows, columns]  # (N, H, W, C)
    return crops.permute(0, 3, 1, 2).contiguous()


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only, so a tampered file cannot run code."""

    allowed = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


class CIFAR10DataModule(ClassificationDataModule):
    """CIFAR-10: 50,000 train / 10,000 test 32x32 colour images in 10 classes; validation = test set.

    Reads (or extracts, or downloads) the official python pickles under ``<data_dir>``; images normalised.

    Args:
        augment: random crop (from a black 4-pixel padding) and h-flip of training batches, on the device.
        mirrors: base URLs the archive is fetched from, tried in turn (default :data:`CIFAR_MIRRORS`).
        data_dir, batch_size, num_workers, seed, download: see :class:`ClassificationDataModule`.

    Example::

        dm = CIFAR10DataModule(data_dir="data", batch_size=128, augment=True)
        dm.prepare_data()  # downloads and extracts 163 MB once
        dm.setup()
        images, labels = next(iter(dm.train_dataloader()))  # (128, 3, 32, 32) float32, (128,) int64
    """

    name = "CIFAR-10"
    archive = "cifar-10-python.tar.gz"
    archive_md5 = "c58f30108f718f92721af3b95e74349a"
    folder = "cifar-10-batches-py"
    train_files: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
    val_files: tuple[str, ...] = ("test_batch",)
    label_key = b"labels"
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    input_shape = (3, 32, 32)
    num_classes = 10

    options = {"augment": (False, boolean), "mirrors": (None, check_mirrors)}
    augment: bool
    mirrors: tuple[str, ...] | None  # None: CIFAR_MIRRORS

    @property
    def batches_dir(self) -> Path:
        """The folder holding the extracted pickled batches."""
        return self.data_dir / self.folder

    def prepare_data(self) -> None:
        """Download and extract the archive if the batches are missing."""
        if not self._missing():
            return
        archive = self.data_dir / self.archive
        if not archive.is_file():
            missing = [f"{self.folder}/{f}" for f in self._missing()]
            files = [(self.archive, self.archive_md5)]
            fetch_missing(
                self.name, self.data_dir, missing, files, self.mirrors or CIFAR_MIRRORS, self.download
            )
        extract_tar(archive, self.data_dir)
        if self._missing():
            raise DataFileError(
                f"{archive} has no {self.folder}/{self._missing()[0]}; delete it and download again"
            )

    def load_splits(self) -> Splits:
        """Unpickle the batches into normalised tensors."""
        self.prepare_data()
        return Splits(*self._read(self.train_files), *self._read(self.val_files))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches, on the device, when ``augment`` is set."""
        if self.augment and self.trainer is not None and self.trainer.training:
            images, labels = batch
            black = [-m / s for m, s in zip(self.mean, self.std, strict=True)]
            batch = [random_crop_flip(images, padding=4, fill=black), labels]
        return batch

    def _missing(self) -> list[str]:
        return [f for f in self.train_files + self.val_files if not (self.batches_dir / f).is_file()]

    def _read(self, files: Sequence[str]) -> tuple[Tensor, Tensor]:
        images, labels = zip(*(self._read_batch(self.batches_dir / f) for f in files), strict=True)
        x = torch.from_numpy(np.concatenate(images)).view(-1, *self.input_shape).float().div_(255)
        x = x.sub_(torch.tensor(self.mean).view(1, 3, 1, 1)).div_(torch.tensor(self.std).view(1, 3, 1, 1))
        return x, torch.from_numpy(np.concatenate(labels))

    def _read_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        fix = f"delete {self.folder} so it is extracted again"
        try:
            with path.open("rb") as file:
                batch = _NumpyUnpickler(file, encoding="bytes").load()
            images = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[self.label_key], dtype=np.int64)
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError) as err:
            raise DataFileError(f"{path} is not a CIFAR python batch ({err!r}); {fix}") from err
        if images.ndim != 2 or images.shape[1] != 3072 or labels.shape != (len(images),):
            raise DataFileError(
                f"{path} holds data {images.shape} and labels {labels.shape}, "
                f"expected (N, 3072) and (N,); {fix}"
            )
        if len(labels) and not 0 <= labels.min() <= labels.max() < self.num_classes:
            raise DataFileError(f"{path} has labels outside 0..{self.num_classes - 1}; {fix}")
        return images, labels


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: like :class:`CIFAR10DataModule` with 100 fine-grained classes."""

    name = "CIFAR-100"
    archive = "cifar-100-python.tar.gz"
    archive_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    folder = "cifar-100-python"
    train_files = ("train",)
    val_files = ("test",)
    label_key = b"fine_labels"
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    num_classes = 100
