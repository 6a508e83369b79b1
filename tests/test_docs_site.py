"""The documentation site as a reader sees it: built with ``mkdocs build --strict``, served, in Chromium.

Needs Debian's ``chromium`` and the ``playwright`` package, like ``tests/test_browser.py`` (``.ci/run``
installs both); ``.ci/docs.sh`` builds the same site in CI.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import chromium_page
from tests.conftest import ROOT
from tests.test_browser import browser  # noqa: F401  (the fixture: Chromium and playwright, or skip)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site_url(browser: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """The site built from this checkout into a temporary folder, served on a free localhost port."""
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)]
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("page_path", "heading", "subheading", "texts"),
    [
        ("", "lightning-clr", "Where to read next", ["Cyclical learning rates", "The LR range test"]),
        ("api/callback/", "lightning_clr.callback", "CyclicLR", ["cycle_momentum", "Raises:", "Example"]),
        ("benchmarks/time-to-accuracy/", "Time to accuracy", "60 epochs", ["bench_time_to_accuracy.py"]),
        ("guide/lightning-cli/", "LightningCLI", "In a config file", ["class_path: lightning_clr.CyclicLR"]),
    ],
)
def test_page_renders_with_its_headings_and_content(
    site_url: str, page_path: str, heading: str, subheading: str, texts: list[str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with chromium_page() as page:
        response = page.goto(site_url + page_path)
        assert response is not None and response.status == 200
        expect(page.locator("article h1")).to_contain_text(heading)
        expect(page.locator("article h2", has_text=subheading).first).to_be_visible()
        article = page.locator("article")
        for text in texts:
            expect(article).to_contain_text(text)
        page.screenshot(path=tmp_path / "page.png", full_page=True)
        assert (tmp_path / "page.png").stat().st_size > 10_000  # a rendered page, not a blank one
