"""Debian's own Chromium, headless, driven by Playwright: no browser is ever downloaded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    sync_playwright,
)

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
def chromium_browser() -> Iterator[Browser]:
    """A fresh headless Chromium for several contexts (each a browser of its own: its own
    cookies and storage), closed on exit."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[BrowserContext]:
    """One browser of a given window size on a fresh Chromium, closed on exit: the docs'
    screenshots (``python -m bench.review_page screenshot``, ``bench.review_desk``)."""
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            yield context
        finally:
            context.close()


def watch(page: Page) -> list[str]:
    """What ``page`` does wrong, as it happens: console errors and warnings, script errors,
    and every dialog a script opens (alert, confirm, prompt: dismissed)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    def on_error(error: Error) -> None:
        problems.append(f"page error: {error}")

    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("dialog", on_dialog)
    return problems
