"""MNIST-1D (Greydanus 2020): a small 1-D digits benchmark generated locally and cached as ``.npz``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_clr.app.data.base import ClassificationDataModule, Splits, check_fraction
from lightning_clr.resume import kept_random_states
from lightning_clr.validation import fail, integer

ARRAYS = ("x", "y", "x_test", "y_test")


class MNIST1DDataModule(ClassificationDataModule):
    """MNIST-1D: 40-sample 1-D signals of the ten digits; 4,000 train / 6,000 validation by default.

    The data set is generated with the ``mnist1d`` package (its own fixed seed, so it is the same
    everywhere; ``seed`` only orders the training batches), never downloaded. Generating takes a few
    seconds, so ``prepare_data`` caches the arrays in ``<data_dir>/mnist1d/`` under a name derived from the
    generation arguments and ``setup`` loads them. Inputs are ``(N, 1, 40)`` float32 (the generator centres
    them and scales them to unit std), labels int64. ``download`` is accepted and ignored.

    Args:
        data_dir, batch_size, num_workers, seed, download: see :class:`ClassificationDataModule`.
        num_samples: samples generated in all (rounded down to a multiple of 10, one tenth per digit).
        train_split: fraction of them used for training; the rest is the validation set.

    Raises:
        InvalidArgument: an argument is out of range.

    Example::

        >>> import tempfile
        >>> dm = MNIST1DDataModule(data_dir=tempfile.mkdtemp(), num_samples=200, batch_size=32)
        >>> dm.input_shape, dm.num_classes
        ((1, 40), 10)
        >>> dm.prepare_data(); dm.setup()
        >>> dm.num_train_samples, dm.num_val_samples
        (80, 120)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, y.dtype
        ((32, 1, 40), torch.float32, torch.int64)
    """

    input_shape = (1, 40)
    num_classes = 10

    options = {
        "num_samples": (10000, lambda name, value: integer(name, value, 10)),
        "train_split": (0.4, check_fraction),
    }
    num_samples: int
    train_split: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        total = self.num_samples // 10 * 10
        if not 0 < int(total * self.train_split) < total:
            fail(
                "train_split",
                self.train_split,
                f"leaves an empty train or validation set of num_samples={self.num_samples!r}",
            )

    def generation_args(self) -> dict[str, Any]:
        """The ``mnist1d`` generation arguments: the package defaults with our size and split."""
        from mnist1d.data import get_dataset_args

        args = get_dataset_args(as_dict=True)
        args.pop("url", None)  # where the reference pickle lives; not a generation argument
        return {**args, "num_samples": self.num_samples, "train_split": self.train_split}

    @property
    def cache_path(self) -> Path:
        """The ``.npz`` file caching the arrays generated with :meth:`generation_args`."""
        key = hashlib.sha256(json.dumps(self.generation_args(), sort_keys=True).encode()).hexdigest()
        return self.data_dir / "mnist1d" / f"mnist1d-{self.num_samples}-{key[:12]}.npz"

    def prepare_data(self) -> None:
        """Generate and cache the data set unless the cache already exists."""
        if not self.cache_path.is_file():
            self._generate()

    def load_splits(self) -> Splits:
        """Load the cached arrays (generating them first if needed) as tensors."""
        arrays = self._load_cache() if self.cache_path.is_file() else None
        if arrays is None:
            arrays = self._generate()

        def inputs(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.astype(np.float32)).unsqueeze(1)

        def labels(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.astype(np.int64))

        return Splits(
            inputs(arrays["x"]), labels(arrays["y"]), inputs(arrays["x_test"]), labels(arrays["y_test"])
        )

    def _load_cache(self) -> dict[str, np.ndarray] | None:
        try:
            with np.load(self.cache_path, allow_pickle=False) as npz:
                return {name: npz[name] for name in ARRAYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            rank_zero_warn(f"MNIST-1D cache {self.cache_path} is unreadable ({err}); generating it again")
            return None

    def _generate(self) -> dict[str, np.ndarray]:
        from mnist1d.data import make_dataset
        from mnist1d.utils import ObjectView

        path = self.cache_path
        rank_zero_info(f"Generating MNIST-1D ({self.num_samples} samples) into {path}")
        with kept_random_states():  # make_dataset reseeds the global `random` and NumPy generators
            dataset = make_dataset(ObjectView(self.generation_args()))
        arrays: dict[str, Any] = {name: np.asarray(dataset[name]) for name in ARRAYS}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as file:
                np.savez(file, **arrays)
            os.replace(partial, path)
        finally:
            Path(partial).unlink(missing_ok=True)
        return arrays
