"""Fetching data set files: mirrors tried in turn, MD5-checked, written atomically; safe tar extraction."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lightning_clr.app.data.base import DatasetMissingError

TIMEOUT_S = 60
CHUNK_BYTES = 1 << 20


class DownloadError(OSError):
    """Every URL failed; the message lists each URL with its reason, on one line."""


def download_file(urls: Sequence[str], destination: Path, md5: str | None = None) -> None:
    """Save the first of ``urls`` that answers with the expected MD5 to ``destination`` (renamed into place
    once complete and checked; ``file://`` URLs work).

    Raises:
        DownloadError: every URL failed (network error, HTTP error or MD5 mismatch).

    Example::

        >>> import tempfile
        >>> src = Path(tempfile.mkdtemp()) / "hello.txt"
        >>> _ = src.write_text("hello")
        >>> download_file([src.as_uri()], src.with_name("copy.txt"), md5="5d41402abc4b2a76b9719d911017c592")
        >>> src.with_name("copy.txt").read_text()
        'hello'
    """
    failures = []
    for url in urls:
        try:
            _fetch(url, destination, md5)
            return
        except OSError as err:  # URLError, HTTPError, timeouts, disk errors and DownloadError are OSErrors
            failures.append(f"{url}: {err}")
    raise DownloadError("; ".join(failures).replace("\n", " ") or "no URL to download from")


def _fetch(url: str, destination: Path, md5: str | None) -> None:
    """Download ``url`` to ``destination``, or raise :class:`DownloadError` if its MD5 is not ``md5``."""
    request = urllib.request.Request(url, headers={"User-Agent": "lightning-clr"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        digest = hashlib.md5(usedforsecurity=False)
        with written_atomically(destination) as out, _progress() as progress:
            task = progress.add_task(url, total=int(response.headers.get("Content-Length") or 0) or None)
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                progress.advance(task, len(chunk))
            if md5 is not None and digest.hexdigest() != md5:  # the partial file is then thrown away
                raise DownloadError(f"MD5 mismatch, expected {md5} but got {digest.hexdigest()}")


@contextmanager
def written_atomically(destination: Path) -> Iterator[BinaryIO]:
    """A file to write that becomes ``destination`` when the block ends, and vanishes if it raises."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(partial, destination)
    finally:
        Path(partial).unlink(missing_ok=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def extract_tar(archive: Path, destination: Path) -> None:
    """Extract ``archive`` into ``destination`` (through a temporary folder), refusing links, devices and
    paths that leave it.

    Raises:
        ValueError: the archive is unreadable, holds an unsafe member, or cannot be written out.
    """
    root = destination.resolve()
    try:
        with (
            tarfile.open(archive, "r:*") as tar,
            tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp,
        ):
            for member in tar.getmembers():
                inside = (root / member.name).resolve().is_relative_to(root)
                if not inside or not (member.isfile() or member.isdir()):
                    raise ValueError(f"{archive} holds an unsafe member {member.name!r}; delete the archive")
            extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, **extra)
            for path in sorted(Path(tmp).rglob("*")):
                target = root / path.relative_to(tmp)
                if path.is_dir():
                    target.mkdir(exist_ok=True)
                else:
                    shutil.move(path, target)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{archive} could not be extracted ({err}); delete it and download again") from err


def fetch_missing(
    name: str,
    folder: Path,
    missing: Sequence[str],
    files: Sequence[tuple[str, str]],
    mirrors: Sequence[str],
    download: bool,
) -> None:
    """Download ``files`` (name, MD5) into ``folder`` from the first working mirror, or raise a one-line
    ``DatasetMissingError`` naming the ``missing`` files and what to download by hand (also when
    ``download`` is false)."""
    names = [file for file, _ in files]
    what = f"{name} not found in {folder} (missing {', '.join(missing)})"
    them = "them" if names == list(missing) else ", ".join(names)
    fetch = f"{mirrors[0]}{names[0]}" if len(names) == 1 else f"{them} from {mirrors[0]}"
    if not download:
        raise DatasetMissingError(f"{what}; set dataset.download=true or download {fetch} into that folder")
    for file, md5 in files:
        try:
            download_file([mirror + file for mirror in mirrors], folder / file, md5)
        except DownloadError as err:
            raise DatasetMissingError(
                f"{what} and the download failed ({err}); download {fetch} into that folder"
            ) from err
