"""Screenshots of the dashboard's pages, taken by the browser tests.

The tests call ``shoot(page, name)`` on every page they visit. By default
the image goes to the test's temporary folder (the call still checks that
the page renders to pixels); with ``GENREC_SCREENSHOT_DIR=docs/img`` the
images replace the ones the README shows:

    GENREC_SCREENSHOT_DIR=$PWD/docs/img pytest tests/e2e/dashboard -q
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page

VIEWPORT = {"width": 1366, "height": 900}  # a laptop screen


def screenshot_dir(default: Path) -> Path:
    configured = os.environ.get("GENREC_SCREENSHOT_DIR")
    target = Path(configured) if configured else default
    target.mkdir(parents=True, exist_ok=True)
    return target


def shoot(page: Page, folder: Path, name: str, full_page: bool = True) -> Path:
    """``folder/dashboard-NAME.png`` of the page (or of the first screen); asserts it was
    written, and that the page fits the window's width (no sideways scrolling on a laptop)."""
    wider = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 0, f"the {name} page is {wider} px wider than the {VIEWPORT['width']} px window"
    path = folder / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 1000, path
    return path
