"""scikit-learn's bundled 8x8 digits: 1,797 images, no download, a seeded stratified split."""

from __future__ import annotations

import numpy as np
import torch

from lightning_clr.app.data.base import ClassificationDataModule, Splits, check_fraction


class DigitsDataModule(ClassificationDataModule):
    """The UCI optical digits shipped with scikit-learn (``load_digits``): 1,797 8x8 images, 10 classes.

    Pixels scaled to [0, 1]; ``data_dir`` and ``download`` are ignored.

    Args:
        val_fraction: fraction of the images held out for validation (stratified, chosen with ``seed``).
        data_dir, batch_size, num_workers, seed, download: see :class:`ClassificationDataModule`.

    Example::

        >>> dm = DigitsDataModule(batch_size=64, seed=0)
        >>> dm.setup()
        >>> dm.num_train_samples, dm.num_val_samples
        (1437, 360)
        >>> x, y = next(iter(dm.val_dataloader()))
        >>> tuple(x.shape), x.dtype, y.dtype
        ((64, 1, 8, 8), torch.float32, torch.int64)
    """

    input_shape = (1, 8, 8)
    num_classes = 10
    options = {"val_fraction": (0.2, check_fraction)}
    val_fraction: float

    def load_splits(self) -> Splits:
        """Load the bundled images and split them."""
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
        y = torch.from_numpy(digits.target.astype(np.int64))
        train, val = train_test_split(
            np.arange(len(y)), test_size=self.val_fraction, random_state=self.seed, stratify=digits.target
        )
        return Splits(x[train], y[train], x[val], y[val])
