"""A headless Chromium (Debian's package, driven by Playwright) for the dashboard tests.

Playwright's own browser download cannot work on machines without internet
access, so the tests launch ``/usr/bin/chromium`` (``apt-get install
chromium``; ``.ci/run`` does it). In CI a missing browser fails the tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import required_but_missing
from tests.e2e.dashboard.screenshots import VIEWPORT, screenshot_dir

# The machines running these tests are shared and often busy: wait for states generously
# (a passing check returns as soon as its state is reached).
expect.set_options(timeout=20_000)

CHROMIUM = os.environ.get("GENREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module, not per session: Playwright's sync API runs an
    asyncio loop on the main thread while it is started, and a later module's
    ``asyncio.run`` would find it there ("cannot be called from a running event loop")."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        # A skip with the reason locally, a failure under CI (CI=1/true/yes, as everywhere).
        required_but_missing(f"no Chromium at {CHROMIUM} nor on PATH: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path / "screenshots")
