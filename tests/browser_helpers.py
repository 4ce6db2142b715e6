"""Debian's own Chromium, headless, driven by Playwright: no browser is ever downloaded."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
MISSING = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[BrowserContext]:
    """A fresh headless Chromium with a new, empty profile, closed on exit."""
    with tempfile.TemporaryDirectory(prefix="aihd-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": width, "height": height},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()
