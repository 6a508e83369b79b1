"""lightning_clr.app.data: every data module from small files written here in the real formats, offline."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import struct
import tarfile
from datetime import date
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from lightning_clr.app.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    ClassificationDataModule,
    DatasetMissingError,
    DigitsDataModule,
    FashionMNISTDataModule,
    MNIST1DDataModule,
    MNISTDataModule,
)
from lightning_clr.app.data.cifar import random_crop_flip
from lightning_clr.app.data.download import extract_tar
from lightning_clr.app.data.mnist import read_idx

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz)."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist(raw_dir: Path, gz: bool = True, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """The four IDX files of a tiny MNIST; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(raw_dir / (name + (".gz" if gz else "")), array)
    return arrays


def write_cifar(root: Path, cls: type[CIFAR10DataModule], per_file: int = 4) -> dict[str, tuple]:
    """Pickled batches of a tiny CIFAR-10/100 in ``root/<folder>``; returns {file: (data, labels)}."""
    rng = np.random.default_rng(1)
    folder = root / cls.folder
    folder.mkdir(parents=True)
    written = {}
    for name in cls.train_files + cls.val_files:
        n = per_file * 5 if cls.train_files == ("train",) and name == "train" else per_file
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, cls.num_classes, n)]
        batch = {b"batch_label": b"test", cls.label_key: labels, b"data": data, b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name] = (data, labels)
    return written


def tar_gz(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


@pytest.fixture(scope="module")
def mnist1d_dir(data_dir: Path) -> Path:
    """The session's data_dir (tests/conftest.py) with the default MNIST-1D cached (generated once: ~5 s)."""
    MNIST1DDataModule(data_dir=data_dir).prepare_data()
    return data_dir


# ---------------------------------------------------------------------------------------------- common


@pytest.mark.parametrize(
    ("cls", "input_shape", "num_classes"),
    [
        (MNIST1DDataModule, (1, 40), 10),
        (DigitsDataModule, (1, 8, 8), 10),
        (MNISTDataModule, (1, 28, 28), 10),
        (FashionMNISTDataModule, (1, 28, 28), 10),
        (CIFAR10DataModule, (3, 32, 32), 10),
        (CIFAR100DataModule, (3, 32, 32), 100),
    ],
)
def test_shape_and_classes_known_before_setup(
    cls: type[ClassificationDataModule], input_shape: tuple, num_classes: int, tmp_path: Path
) -> None:
    dm = cls(data_dir=tmp_path / "nothing-here", download=False)
    assert (dm.input_shape, dm.num_classes) == (input_shape, num_classes)
    with pytest.raises(RuntimeError, match="call setup"):
        _ = dm.num_train_samples


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (DigitsDataModule, {"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
        (DigitsDataModule, {"batch_size": True}, "batch_size=True must be an integer >= 1"),
        (DigitsDataModule, {"num_workers": -1}, "num_workers=-1 must be an integer >= 0"),
        (DigitsDataModule, {"seed": 1.5}, "seed=1.5 must be an integer"),
        (DigitsDataModule, {"download": "yes"}, "download='yes' must be true or false"),
        (DigitsDataModule, {"data_dir": None}, "data_dir=None must be a non-empty path"),
        (
            DigitsDataModule,
            {"val_fraction": 1.0},
            "val_fraction=1.0 must be a number strictly between 0 and 1",
        ),
        (MNIST1DDataModule, {"num_samples": 5}, "num_samples=5 must be an integer >= 10"),
        (
            MNIST1DDataModule,
            {"train_split": 1.5},
            "train_split=1.5 must be a number strictly between 0 and 1",
        ),
        (MNIST1DDataModule, {"num_samples": 10, "train_split": 0.05}, "train_split=0.05 leaves an empty"),
        (MNISTDataModule, {"val_split": 0}, "val_split=0 must be a number strictly between 0 and 1"),
        (MNISTDataModule, {"mirrors": "http://x/"}, "mirrors='http://x/' must be a non-empty list"),
        (FashionMNISTDataModule, {"mirrors": []}, "mirrors=[] must be a non-empty list"),
        (CIFAR10DataModule, {"augment": 1}, "augment=1 must be true or false"),
    ],
)
def test_invalid_arguments_are_named(cls: type[ClassificationDataModule], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cls(**kwargs)


def test_train_loader_shuffles_reproducibly_and_val_keeps_order() -> None:
    def first_batches(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        dm = DigitsDataModule(batch_size=50, seed=seed)
        dm.setup()
        return next(iter(dm.train_dataloader()))[0], next(iter(dm.val_dataloader()))[0]

    train_a, val_a = first_batches(seed=0)
    train_b, val_b = first_batches(seed=0)
    train_c, _ = first_batches(seed=1)
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    assert not torch.equal(train_a, train_c)

    dm = DigitsDataModule(batch_size=50, seed=0)
    dm.setup()
    assert torch.equal(val_a, dm.val_set.tensors[0][:50])
    assert not torch.equal(train_a, dm.train_set.tensors[0][:50])


def test_loader_options_follow_workers_and_device() -> None:
    dm = DigitsDataModule(batch_size=64, num_workers=1)
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()
    x, y = next(iter(loader))
    assert x.shape == (64, 1, 8, 8) and y.shape == (64,)
    dm0 = DigitsDataModule()
    dm0.setup()
    assert not dm0.val_dataloader().persistent_workers


# --------------------------------------------------------------------------------------------- mnist1d


def test_mnist1d_sizes_shapes_and_dtypes(mnist1d_dir: Path) -> None:
    dm = MNIST1DDataModule(data_dir=mnist1d_dir)
    dm.setup()
    assert (dm.num_train_samples, dm.num_val_samples) == (4000, 6000)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 1, 40) and x.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64
    labels = torch.cat([dm.train_set.tensors[1], dm.val_set.tensors[1]])
    assert set(labels.tolist()) == set(range(10))
    assert len(list(dm.val_dataloader())) == 60


def test_mnist1d_second_setup_reads_the_cache(mnist1d_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mnist1d.data

    first = MNIST1DDataModule(data_dir=mnist1d_dir)
    first.setup()
    assert first.cache_path.parent == mnist1d_dir / "mnist1d" and first.cache_path.is_file()

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated although the cache exists")

    monkeypatch.setattr(mnist1d.data, "make_dataset", fail)
    again = MNIST1DDataModule(data_dir=mnist1d_dir)
    again.prepare_data()
    again.setup()
    assert torch.equal(first.val_set.tensors[0], again.val_set.tensors[0])


def test_mnist1d_cache_is_keyed_by_the_generation_args(tmp_path: Path) -> None:
    small = MNIST1DDataModule(data_dir=tmp_path, num_samples=100)
    other = MNIST1DDataModule(data_dir=tmp_path, num_samples=200, train_split=0.5)
    assert small.cache_path != other.cache_path
    for dm, sizes in ((small, (40, 60)), (other, (100, 100))):
        dm.setup()  # setup without prepare_data generates the cache too
        assert (dm.num_train_samples, dm.num_val_samples) == sizes
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 2
    assert not list((tmp_path / "mnist1d").glob(".*"))  # no temporary file left behind


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path: Path) -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    MNIST1DDataModule(data_dir=tmp_path, num_samples=50).prepare_data()
    assert np.random.rand() == expected


def test_mnist1d_unreadable_cache_is_regenerated(tmp_path: Path) -> None:
    dm = MNIST1DDataModule(data_dir=tmp_path, num_samples=50)
    dm.cache_path.parent.mkdir(parents=True)
    dm.cache_path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        dm.setup()
    assert dm.num_train_samples == 20


# ---------------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_range_and_reproducibility() -> None:
    a, b, c = DigitsDataModule(seed=0), DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert (a.num_train_samples, a.num_val_samples) == (1437, 360)
    assert torch.equal(a.val_set.tensors[0], b.val_set.tensors[0])
    assert not torch.equal(a.val_set.tensors[0], c.val_set.tensors[0])
    x = a.train_set.tensors[0]
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
    assert x.min() == 0 and x.max() == 1
    assert torch.bincount(a.val_set.tensors[1]).min() >= 35  # stratified: ~36 per class


def test_digits_val_fraction() -> None:
    dm = DigitsDataModule(val_fraction=0.5)
    dm.setup()
    assert dm.num_train_samples + dm.num_val_samples == 1797
    assert abs(dm.num_val_samples - 898) <= 1


# ------------------------------------------------------------------------------------ mnist / fashion


@pytest.mark.parametrize("cls", [MNISTDataModule, FashionMNISTDataModule])
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files(cls: type[MNISTDataModule], gz: bool, tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path / cls.folder / "raw", gz=gz)
    dm = cls(data_dir=tmp_path, batch_size=8, download=False)
    dm.prepare_data()
    dm.setup()
    assert (dm.num_train_samples, dm.num_val_samples) == (20, 10)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    images = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:8]).float().unsqueeze(1)
    torch.testing.assert_close(x, (images / 255 - cls.mean) / cls.std)
    assert y.tolist() == arrays["t10k-labels-idx1-ubyte"][:8].tolist()
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28)


def test_mnist_val_split_holds_out_part_of_train(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    dms = [MNISTDataModule(data_dir=tmp_path, val_split=0.25, seed=s) for s in (0, 0, 1)]
    for dm in dms:
        dm.setup()
    assert (dms[0].num_train_samples, dms[0].num_val_samples) == (15, 5)
    assert torch.equal(dms[0].val_set.tensors[0], dms[1].val_set.tensors[0])
    assert not torch.equal(dms[0].val_set.tensors[0], dms[2].val_set.tensors[0])
    full = MNISTDataModule(data_dir=tmp_path)
    full.setup()
    both = torch.cat([dms[0].train_set.tensors[0], dms[0].val_set.tensors[0]]).flatten(1)
    original = full.train_set.tensors[0].flatten(1)
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, original.tolist()))


def test_read_idx_big_endian_types(tmp_path: Path) -> None:
    ints = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    floats = np.array([0.5, -1.25], dtype=np.float32)
    assert read_idx(write_idx(tmp_path / "i.gz", ints, 0x0C)).tolist() == ints.tolist()
    assert read_idx(write_idx(tmp_path / "f", floats, 0x0D)).tolist() == floats.tolist()


def test_read_idx_rejects_corrupt_files(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good", np.zeros((3, 28, 28), dtype=np.uint8)).read_bytes()
    cases = {
        "truncated": (good[:-5], "is corrupt: its header says (3, 28, 28)"),
        "magic": (b"\x08\x03" + good[2:], "is not an IDX file (magic number 0x0803"),
        "header": (good[:9], "is truncated inside its IDX header"),
        "empty": (b"", "is not an IDX file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(message)):
            read_idx(tmp_path / name)
    (tmp_path / "plain.gz").write_bytes(good)
    with pytest.raises(ValueError, match="not a valid gzip file"):
        read_idx(tmp_path / "plain.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(ValueError, match="not a valid gzip file"):
        read_idx(tmp_path / "cut.gz")


def test_mnist_corrupt_or_mismatched_files_fail_clearly(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    images = raw / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-1]))
    with pytest.raises(ValueError, match=re.escape(f"{images} is corrupt")):
        MNISTDataModule(data_dir=tmp_path).setup()
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    write_idx(images, np.zeros((10, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected \(10,\) labels below 10"):
        MNISTDataModule(data_dir=tmp_path).setup()


def test_mnist_missing_without_download_says_where_and_how(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    dm = MNISTDataModule(data_dir=tmp_path, download=False)
    with pytest.raises(DatasetMissingError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert f"MNIST not found in {raw} (missing train-images-idx3-ubyte.gz, " in message
    assert (
        "set dataset.download=true or download them from https://ossci-datasets.s3.amazonaws.com/mnist/"
        in message
    )

    write_mnist(raw)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    url = "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"
    with pytest.raises(
        DatasetMissingError, match=re.escape("(missing t10k-labels-idx1-ubyte.gz); ") + ".*" + re.escape(url)
    ):
        dm.setup()


def make_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type[MNISTDataModule]) -> str:
    """Gzipped IDX files served from a folder, with the data module's MD5 table pointing at them."""
    mirror = tmp_path / "mirror"
    write_mnist(mirror, gz=True)
    resources = tuple((f + ".gz", md5(mirror / (f + ".gz"))) for f in MNIST_FILES)
    monkeypatch.setattr(cls, "resources", resources)
    return mirror.as_uri() + "/"


@pytest.mark.parametrize("cls", [MNISTDataModule, FashionMNISTDataModule])
def test_mnist_downloads_from_the_first_working_mirror(
    cls: type[MNISTDataModule], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = make_mirror(tmp_path, monkeypatch, cls)
    dead = (tmp_path / "dead").as_uri() + "/"
    dm = cls(data_dir=tmp_path / "data", mirrors=[dead, mirror])
    dm.prepare_data()
    raw = tmp_path / "data" / cls.folder / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f + ".gz" for f in MNIST_FILES)
    dm.setup()
    assert (dm.num_train_samples, dm.num_val_samples) == (20, 10)


def test_mnist_download_md5_mismatch_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = make_mirror(tmp_path, monkeypatch, MNISTDataModule)
    bad = tuple((name, "0" * 32) for name, _ in MNISTDataModule.resources)
    monkeypatch.setattr(MNISTDataModule, "resources", bad)
    dm = MNISTDataModule(data_dir=tmp_path / "data", mirrors=[mirror])
    with pytest.raises(DatasetMissingError, match=r"MD5 mismatch, expected 0{32} ") as info:
        dm.prepare_data()
    assert "download failed" in str(info.value) and "\n" not in str(info.value)
    assert list((tmp_path / "data" / "MNIST" / "raw").iterdir()) == []


def test_mnist_every_mirror_failing_is_dataset_missing(tmp_path: Path) -> None:
    dead = [(tmp_path / "a").as_uri() + "/", (tmp_path / "b").as_uri() + "/"]
    with pytest.raises(DatasetMissingError) as info:
        MNISTDataModule(data_dir=tmp_path / "data", mirrors=dead).prepare_data()
    message = str(info.value)
    assert all(url in message for url in dead) and "\n" not in message
    assert str(tmp_path / "data" / "MNIST" / "raw") in message and "download failed" in message


# ----------------------------------------------------------------------------------------------- cifar


@pytest.mark.parametrize("cls", [CIFAR10DataModule, CIFAR100DataModule])
def test_cifar_reads_pickled_batches(cls: type[CIFAR10DataModule], tmp_path: Path) -> None:
    written = write_cifar(tmp_path, cls)
    dm = cls(data_dir=tmp_path, batch_size=4, download=False)
    dm.setup()
    assert (dm.num_train_samples, dm.num_val_samples) == (20, 4)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    data, labels = written[cls.val_files[0]]
    raw = torch.from_numpy(data).view(4, 3, 32, 32).float() / 255
    mean, std = torch.tensor(cls.mean).view(1, 3, 1, 1), torch.tensor(cls.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std)
    assert y.tolist() == labels
    first_train = written[cls.train_files[0]][1]
    assert dm.train_set.tensors[1][: len(first_train)].tolist() == first_train


@pytest.mark.parametrize("cls", [CIFAR10DataModule, CIFAR100DataModule])
def test_cifar_downloads_and_extracts_the_archive(
    cls: type[CIFAR10DataModule], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    write_cifar(source, cls)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = tar_gz(source / cls.folder, mirror / cls.archive)
    monkeypatch.setattr(cls, "archive_md5", md5(archive))
    dm = cls(data_dir=tmp_path / "data", mirrors=[mirror.as_uri() + "/"])
    dm.prepare_data()
    assert (tmp_path / "data" / cls.archive).is_file()
    assert sorted(p.name for p in (tmp_path / "data" / cls.folder).iterdir()) == sorted(
        cls.train_files + cls.val_files
    )
    assert not list((tmp_path / "data").glob(".*"))  # no partial download or extraction folder left
    dm.setup()
    assert dm.num_train_samples == 20


def test_cifar_extracts_an_archive_put_in_data_dir_by_hand(tmp_path: Path) -> None:
    write_cifar(tmp_path / "source", CIFAR10DataModule)
    (tmp_path / "data").mkdir()
    tar_gz(tmp_path / "source" / CIFAR10DataModule.folder, tmp_path / "data" / CIFAR10DataModule.archive)
    dm = CIFAR10DataModule(data_dir=tmp_path / "data", download=False)
    dm.setup()
    assert dm.num_val_samples == 4


def test_cifar_archive_md5_mismatch(tmp_path: Path) -> None:
    write_cifar(tmp_path / "source", CIFAR10DataModule)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    tar_gz(tmp_path / "source" / CIFAR10DataModule.folder, mirror / CIFAR10DataModule.archive)
    dm = CIFAR10DataModule(data_dir=tmp_path / "data", mirrors=[mirror.as_uri() + "/"])
    with pytest.raises(DatasetMissingError, match=f"MD5 mismatch, expected {CIFAR10DataModule.archive_md5} "):
        dm.prepare_data()
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("cls", [CIFAR10DataModule, CIFAR100DataModule])
def test_cifar_missing_without_download_says_where_and_how(
    cls: type[CIFAR10DataModule], tmp_path: Path
) -> None:
    with pytest.raises(DatasetMissingError) as info:
        cls(data_dir=tmp_path, download=False).setup()
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert f"https://www.cs.toronto.edu/~kriz/{cls.archive}" in message
    assert f"{cls.folder}/{cls.train_files[0]}" in message and "dataset.download=true" in message


def test_cifar_refuses_pickles_that_could_run_code_and_corrupt_batches(tmp_path: Path) -> None:
    write_cifar(tmp_path, CIFAR10DataModule)
    batch = tmp_path / CIFAR10DataModule.folder / "test_batch"
    batch.write_bytes(pickle.dumps({b"data": date(2020, 1, 1), b"labels": []}))
    with pytest.raises(ValueError, match=r"global datetime\.date is not allowed"):
        CIFAR10DataModule(data_dir=tmp_path).setup()
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:-30])
    with pytest.raises(ValueError, match="test_batch is not a CIFAR python batch"):
        CIFAR10DataModule(data_dir=tmp_path).setup()
    batch.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}))
    with pytest.raises(ValueError, match=r"labels outside 0\.\.9"):
        CIFAR10DataModule(data_dir=tmp_path).setup()


def test_extract_tar_refuses_unsafe_members(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    for name, kind in (("../evil.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        archive = tmp_path / "bad.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            member = tarfile.TarInfo(name)
            member.type, member.linkname, member.size = kind, "/etc/passwd", 0
            tar.addfile(member, io.BytesIO(b""))
        with pytest.raises(ValueError, match="unsafe member"):
            extract_tar(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and list(dest.iterdir()) == []


# -------------------------------------------------------------------------------------- augmentation


def test_random_crop_flip_takes_shifted_and_mirrored_windows() -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 2, 6, 6)
    fill = [-1.0, -2.0]
    out = random_crop_flip(images, padding=2, fill=fill)
    assert out.shape == images.shape
    padded = torch.tensor(fill).view(1, 2, 1, 1).expand(64, 2, 10, 10).clone()
    padded[:, :, 2:8, 2:8] = images
    found = []
    for i in range(64):
        windows = []
        for dy, dx in np.ndindex(5, 5):
            window = padded[i, :, dy : dy + 6, dx : dx + 6]
            windows += [
                (dy, dx, flip)
                for flip in (False, True)
                if torch.equal(out[i], window.flip(-1) if flip else window)
            ]
        assert windows, f"image {i} is not a crop of its padded original"
        found.append(windows[0])
    assert {flip for *_, flip in found} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in found}) > 10


class _Recorder(L.LightningModule):
    """Records the batches the Trainer hands to training_step and validation_step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 32 * 32, 10)
        self.train_batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.val_batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.train_batches.append((batch[0].clone(), batch[1].clone()))
        return torch.nn.functional.cross_entropy(self.layer(batch[0].flatten(1)), batch[1])

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.val_batches.append((batch[0].clone(), batch[1].clone()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("augment", [True, False])
def test_augmentation_changes_only_training_batches(augment: bool, tmp_path: Path) -> None:
    write_cifar(tmp_path, CIFAR10DataModule)
    dm = CIFAR10DataModule(data_dir=tmp_path, batch_size=4, augment=augment)
    model = _Recorder()
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    raw_train = list(dm.train_dataloader())[:2]  # same seeded order as the Trainer's loader
    raw_val = next(iter(dm.val_dataloader()))
    assert len(model.train_batches) == 2 and len(model.val_batches) == 1
    for (x, y), (raw_x, raw_y) in zip(model.train_batches, raw_train, strict=True):
        assert x.shape == raw_x.shape and torch.equal(y, raw_y)
        assert torch.equal(x, raw_x) != augment
    assert torch.equal(model.val_batches[0][0], raw_val[0])
