"""Debian's Chromium driven by Playwright: ONE browser per test process.

Playwright's sync API runs its own event loop while it is open, so a second ``sync_playwright()`` in the
same process fails ("Sync API inside the asyncio loop"). The fixture therefore lives in the root
conftest, shared by every directory's browser tests; never import it into a test module (that makes a
second session fixture)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
