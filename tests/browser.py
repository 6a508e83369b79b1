"""Look at a run's TensorBoard the way a user does: serve its log dir, open it in headless Chromium.

Used by the browser test and ``scripts/make_screenshots.py``. The browser is the system's Chromium (Debian:
``apt-get install chromium``) driven by Playwright (``pip install playwright``, the ``dev`` extra), which
downloads no browser of its own when given ``executable_path``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["CHROMIUM", "chromium_page", "serve_tensorboard"]

CHROMIUM = Path("/usr/bin/chromium")
#: Flags that keep Chromium from reaching out of a closed network (where it would hang) or needing a GPU.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def serve_tensorboard(logdir: str | Path, timeout: float = 120.0) -> Iterator[str]:
    """Run ``tensorboard --logdir logdir`` on a free localhost port; yield its URL; stop it on exit.

    Raises:
        RuntimeError: if TensorBoard exits or does not answer within ``timeout`` seconds (with its output).

    Example::

        >>> import tempfile
        >>> import urllib.request
        >>> with serve_tensorboard(tempfile.mkdtemp()) as url:  # e.g. "outputs": every run
        ...     print(url[:17], urllib.request.urlopen(url).status)
        http://127.0.0.1: 200
    """
    port = _free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_until_up(url, process, log, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def chromium_page(executable: str | Path = CHROMIUM, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A page of a fresh headless Chromium (its own temporary profile), closed on exit.

    Example (skipped where Debian's ``chromium`` is not installed, as the browser test is)::

        >>> if not CHROMIUM.is_file():
        ...     import pytest
        ...     pytest.skip(f"no Chromium at {CHROMIUM}")
        >>> with chromium_page() as page:  # then page.goto(url), page.screenshot(path=...)
        ...     _ = page.goto("data:text/html,<h1>CLR dashboard</h1>")
        ...     page.locator("h1").inner_text()
        'CLR dashboard'
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[str], log: IO[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"tensorboard exited with status {process.returncode}:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "data/plugins_listing", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"tensorboard did not answer at {url} within {timeout:.0f} s")
