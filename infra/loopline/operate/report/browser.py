"""Open a report in a real headless Chromium: a screenshot, and the DOM after the page has loaded.

Used by `loopline report --screenshot` and by the tests that check the figures render in a browser.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# no sandbox (root in containers), no GPU, nothing fetched or synced in the background: a page and nothing else
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def find_chromium() -> str | None:
    """The first Chromium on PATH, or None."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def _run(page: Path, *extra: str, timeout: float = 120) -> str:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="loopline-chromium-") as profile:
        result = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-800:]}")
    return result.stdout


def rendered_dom(page: Path) -> str:
    """The page's DOM once loaded (scripts run): the report marks <body data-figures-rendered="n/m">."""
    return _run(page, "--dump-dom", "--virtual-time-budget=5000")


def screenshot(page: Path, output: Path, *, width: int = 1200, height: int = 3000) -> Path:
    """A PNG of the page's first `height` pixels at `width`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    _run(page, f"--screenshot={output.resolve()}", f"--window-size={width},{height}", "--virtual-time-budget=5000")
    return output
