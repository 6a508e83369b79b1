"""What every data module shares: argument checks, in-memory tensors and the DataLoaders."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from lightning_clr.resume import ResumableDataLoader
from lightning_clr.validation import boolean, fail, finite, integer, is_list

_Loader = TypeVar("_Loader", bound=DataLoader)


class DatasetMissingError(FileNotFoundError):
    """A data set is not on disk and cannot be downloaded; the message says where to put it."""


class DataFileError(ValueError):
    """A data set's file on disk is broken; the message names the file, what is wrong and how to fix it."""


class Splits(NamedTuple):
    """Training and validation tensors: inputs ``(N, *input_shape)`` float32, labels ``(N,)`` int64."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor


def check_fraction(name: str, value: object) -> float:
    """``value`` as a float when it lies strictly between 0 and 1."""
    number = finite(value)
    if number is None or not 0 < number < 1:
        fail(name, value, "must be a number strictly between 0 and 1")
    return number


def check_mirrors(name: str, value: object) -> tuple[str, ...]:
    """``value`` as a tuple when it is a non-empty sequence of base URLs."""
    urls = list(value) if is_list(value) else []  # type: ignore[call-overload]  # is_list: a sequence
    if not urls or not all(isinstance(url, str) for url in urls):
        fail(name, value, "must be a non-empty list of base URLs")
    return tuple(urls)


def random_split(num_samples: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded random ``(train_indices, val_indices)`` holding out ``round(num_samples * val_fraction)``.

    Example::

        >>> train, val = random_split(10, 0.2, seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    num_val = round(num_samples * val_fraction)
    if not 0 < num_val < num_samples:
        raise ValueError(
            f"val_fraction={val_fraction!r} leaves an empty train or validation set of {num_samples} samples"
        )
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[num_val:], order[:num_val]


class ClassificationDataModule(L.LightningDataModule):
    """Base class: a classification data set held as tensors in memory.

    Subclasses set ``input_shape`` and ``num_classes`` (known before ``setup``), implement
    :meth:`load_splits`, and list their own arguments in :attr:`options`.

    Args:
        data_dir: folder holding the data sets (each in its own sub-folder).
        batch_size: samples per batch, for training and validation.
        num_workers: DataLoader worker processes (0 loads in the main process).
        seed: seeds the training shuffle and any train/validation split.
        download: fetch a missing data set in ``prepare_data``; if false, raise ``DatasetMissingError``.
        **options: the subclass's own arguments (:attr:`options`).

    Raises:
        InvalidArgument: an argument is out of range.
        TypeError: an argument the data set does not take.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    options: ClassVar[Mapping[str, tuple[Any, Callable[[str, Any], Any]]]] = {}
    """The subclass's own arguments: ``name -> (default, check(name, value) -> value)``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = "data",
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        download: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(data_dir, str | os.PathLike) or not str(data_dir):
            fail("data_dir", data_dir, "must be a non-empty path")
        self.data_dir = Path(data_dir)
        self.batch_size = integer("batch_size", batch_size, 1)
        self.num_workers = integer("num_workers", num_workers, 0)
        self.seed = integer("seed", seed, 0)
        self.download = boolean("download", download)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            own = ", ".join(self.options) or "none"
            raise TypeError(f"{type(self).__name__} takes no argument {unknown[0]!r} (its own: {own})")
        for name, (default, check) in self.options.items():
            value = options.get(name, default)
            setattr(self, name, None if value is None and default is None else check(name, value))
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self._shuffle: torch.Generator | None = None
        self._resumed_shuffle: Tensor | None = None

    def load_splits(self) -> Splits:
        """Read (or generate) the data set and return its train and validation tensors."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Load the tensors into memory (once; later calls do nothing)."""
        if self.train_set is None:
            splits = self.load_splits()
            self.train_set = TensorDataset(splits.train_x, splits.train_y)
            self.val_set = TensorDataset(splits.val_x, splits.val_y)

    @property
    def num_train_samples(self) -> int:
        """Number of training samples (after ``setup``)."""
        return len(self._require_setup(self.train_set))

    @property
    def num_val_samples(self) -> int:
        """Number of validation samples (after ``setup``)."""
        return len(self._require_setup(self.val_set))

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled training batches, in the same order for the same ``seed``; resumable mid-epoch."""
        generator = torch.Generator().manual_seed(self.seed)
        if self._resumed_shuffle is not None:
            generator.set_state(self._resumed_shuffle)
            self._resumed_shuffle = None
        self._shuffle = generator
        return self._loader(
            ResumableDataLoader, self._require_setup(self.train_set), shuffle=True, generator=generator
        )

    def val_dataloader(self) -> DataLoader:
        """Validation batches, in a fixed order."""
        return self._loader(DataLoader, self._require_setup(self.val_set), shuffle=False)

    def state_dict(self) -> dict[str, Any]:
        """The training shuffle generator's state: at an epoch end, where the next epoch's order starts."""
        return {} if self._shuffle is None else {"shuffle": self._shuffle.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Let the next :meth:`train_dataloader` shuffle on from the saved state."""
        self._resumed_shuffle = state_dict.get("shuffle")

    def _loader(self, loader: type[_Loader], dataset: TensorDataset, **kwargs: Any) -> _Loader:
        return loader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def _require_setup(self, dataset: TensorDataset | None) -> TensorDataset:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} has no data yet: call setup() first")
        return dataset
