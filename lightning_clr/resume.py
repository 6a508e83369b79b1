"""What a checkpoint needs so that a resumed run continues bit-exactly: the loader's place
(:class:`ResumableDataLoader`, whose state Lightning checkpoints) and the global RNGs (:class:`RandomStates`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from typing import Any, cast

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

__all__ = [
    "RandomStates",
    "ResumableDataLoader",
    "SkippingBatchSampler",
    "kept_random_states",
    "random_states",
    "set_random_states",
]


class SkippingBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose next pass leaves out its first ``skip`` batches (the indices are still drawn,
    so the rest keep a full pass's order); later passes are whole.

    Example::

        >>> sampler = SkippingBatchSampler(range(7), batch_size=2, drop_last=False)
        >>> sampler.skip = 2
        >>> list(sampler), list(sampler)
        ([[4, 5], [6]], [[0, 1], [2, 3], [4, 5], [6]])
    """

    def __init__(self, sampler: Sampler[int] | Iterable[int], batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return itertools.islice(super().__iter__(), skip, None)


class ResumableDataLoader(DataLoader):
    """A shuffling (or not) DataLoader whose position within the epoch survives a checkpoint.

    ``state_dict()`` is the shuffle generator's state at the start of the pass and the batches taken in it;
    after ``load_state_dict`` the next pass draws the same permutation and skips those batches unloaded.

    Args:
        dataset: a map-style data set.
        batch_size: samples per batch.
        shuffle: a new permutation every pass, drawn from ``generator``.
        generator: the shuffle's generator (a seeded one makes the order reproducible).
        drop_last: drop the last incomplete batch.
        **kwargs: any other ``DataLoader`` argument (``num_workers``, ``pin_memory``, ...).

    Example::

        >>> data = list(range(6))
        >>> loader = ResumableDataLoader(data, batch_size=2, shuffle=True,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> batches = iter(loader); first = next(batches)
        >>> state = loader.state_dict()
        >>> rest = [b.tolist() for b in batches]
        >>> again = ResumableDataLoader(data, batch_size=2, shuffle=True, generator=torch.Generator())
        >>> again.load_state_dict(state)
        >>> [b.tolist() for b in again] == rest
        True
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, Sized):
            raise TypeError(f"dataset={type(dataset).__name__} must be a map-style data set with a length")
        sampler = RandomSampler(dataset, generator=generator) if shuffle else range(len(dataset))
        batch_sampler = kwargs.pop("batch_sampler", None)  # Lightning's, re-created for DDP
        batch_sampler = batch_sampler or SkippingBatchSampler(sampler, batch_size, drop_last)
        super().__init__(dataset, batch_sampler=batch_sampler, generator=generator, **kwargs)
        self._pass_start: torch.Tensor | None = None
        self._taken = 0
        self._resume: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        resume, self._resume = self._resume, None
        self._taken = 0 if resume is None else resume["batches"]
        if resume is not None:
            if self.generator is not None and resume["generator"] is not None:
                self.generator.set_state(resume["generator"])
            cast(SkippingBatchSampler, self.batch_sampler).skip = self._taken
        self._pass_start = self.generator.get_state() if self.generator is not None else None
        return self._count(super().__iter__())

    def _count(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._taken += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """``{"generator": <ByteTensor or None>, "batches": <batches taken in this pass>}``."""
        return {"generator": self._pass_start, "batches": self._taken}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next pass continue the saved one."""
        self._resume = {
            "generator": state_dict.get("generator"),
            "batches": int(state_dict.get("batches", 0)),
        }


def random_states() -> dict[str, Any]:
    """Python's, NumPy's, torch's (and CUDA's) global random states, as plain values and tensors (a
    checkpoint loads them with ``torch.load(weights_only=True)``)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else [],
    }


def set_random_states(states: Mapping[str, Any]) -> None:
    """Put back what :func:`random_states` read."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def kept_random_states() -> Iterator[None]:
    """Whatever the block draws or reseeds, the global random states are as before afterwards.

    Example::

        >>> with kept_random_states():
        ...     _ = torch.manual_seed(1)
        >>> state = torch.get_rng_state()
        >>> with kept_random_states():
        ...     _ = torch.rand(3)
        >>> torch.equal(torch.get_rng_state(), state)
        True
    """
    states = random_states()
    try:
        yield
    finally:
        set_random_states(states)


class RandomStates(Callback):
    """Keep Python's, NumPy's, torch's (and CUDA's) global random states in the checkpoint; restore them at
    the resumed training's start (after the sanity check, whose loaders draw from them).

    Example::

        >>> callback = RandomStates()
        >>> state = callback.state_dict()
        >>> first = torch.rand(1)
        >>> callback.load_state_dict(state); callback.on_train_start(None, None)
        >>> torch.equal(torch.rand(1), first)
        True
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return random_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            set_random_states(self._pending)
            self._pending = None
