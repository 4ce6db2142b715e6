"""The review page in a real headless Chromium: it loads clean, slides, takes keys, exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page

from pipeline.sandbox import Sandbox
from tests.browser_helpers import CHROMIUM, MISSING, chromium
from tests.cli_helpers import FAST, aihd
from tests.review_helpers import (
    INSIDE,
    PhotoFactory,
    collected_listing,
    decisions_by_name,
    ledger_listing,
)

# Slow: each test starts a Chromium of its own (seconds), and its commands in processes.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)]


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


@pytest.fixture
def page() -> Iterator[Page]:
    """A page of a fresh browser; console errors and warnings and page errors are gathered."""
    with chromium() as context:
        opened = context.new_page()
        problems: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                problems.append(f"console {message.type}: {message.text}")

        def on_error(error: Error) -> None:
            problems.append(f"page error: {error}")

        opened.on("console", on_console)
        opened.on("pageerror", on_error)
        opened.problems = problems  # type: ignore[attr-defined]
        yield opened


def _open(page: Page, manifest: Path) -> None:
    done = aihd(["review", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    page.goto(done.stdout.strip())
    page.wait_for_selector("body[data-ready=true]")


def _problems(page: Page) -> list[str]:
    return list(page.problems)  # type: ignore[attr-defined]


def test_page_loads_clean_and_the_slider_moves(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """No console error; every thumbnail decodes; a click at 20% moves the split to 20%."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _open(page, manifest)
    assert page.locator("article.photo").count() == 5
    page.wait_for_function(
        "[...document.querySelectorAll('article.photo')].slice(0, 2)"
        ".every(c => [...c.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0))"
    )
    first = page.locator("article.photo").first
    assert first.locator("img").count() == 2
    box = first.locator(".compare").bounding_box()
    assert box is not None
    assert first.locator(".compare").evaluate("e => e.style.getPropertyValue('--pos')") == ""
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
    position = first.locator(".compare").evaluate("e => e.style.getPropertyValue('--pos')")
    assert 15 <= float(position.rstrip("%")) <= 25
    handle = first.locator(".handle").bounding_box()
    assert handle is not None
    assert abs(handle["x"] - (box["x"] + box["width"] * 0.2)) < box["width"] / 10
    clip = first.locator("img.before").evaluate("e => getComputedStyle(e).clipPath")
    assert clip.startswith("inset(") and clip != "inset(0px 50% 0px 0px)"
    assert _problems(page) == []


def test_keys_approve_and_reject_and_the_export_applies(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """a / r on the current photo, arrows to move; the exported file records the same."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _open(page, manifest)
    # The order on the page: front, yard (exterior first), then bath, den, kitchen.
    for key in ("a", "ArrowRight", "r", "ArrowRight", "ArrowRight", "a", "ArrowLeft", "a", "u"):
        page.keyboard.press(key)
    # front approved, yard rejected, den approved, bath approved and then undecided.
    assert "2 approved · 1 rejected · 2 unreviewed" in page.inner_text("#counts")
    page.click("#filters button[data-filter=approved]")
    visible = page.locator("article.photo:visible")
    assert visible.count() == 2
    assert "front.jpg" in visible.first.inner_text() and "den.jpg" in visible.last.inner_text()
    page.click("#filters button[data-filter=all]")
    kitchen = page.locator("article.photo", has_text="kitchen.jpg")
    kitchen.get_by_role("button", name="Approve").click()
    rejected = page.locator("article.photo", has_text="yard.jpg")
    assert "aihd reorder" in rejected.inner_text()

    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path / "decisions.json"
    download.value.save_as(exported)
    assert decisions_by_name(manifest) == {}
    done = aihd(["review", str(manifest), "--apply", str(exported)], None)
    assert done.returncode == 0, done.stderr
    assert decisions_by_name(manifest) == {
        "front.jpg": "approved",
        "yard.jpg": "rejected",
        "den.jpg": "approved",
        "kitchen.jpg": "approved",
    }
    assert _problems(page) == []

    _open(page, manifest)  # a new page starts from the ledger's decisions
    assert "3 approved · 1 rejected · 1 unreviewed" in page.inner_text("#counts")
    assert _problems(page) == []


def test_failed_and_waiting_photos_show_their_state(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """A broken file shows its error under the failed filter; a submitted one its state."""
    photo_factory(tmp_path / INSIDE, "kitchen.jpg")
    (tmp_path / INSIDE / "broken.jpg").write_bytes(b"\xff\xd8 not really a photo")
    manifest = tmp_path / "listing.yaml"
    manifest.write_text(
        f"version: 1\nledger: listing.ledger.sqlite\nfolders:\n  - path: {INSIDE}\n"
    )
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 1
    _open(page, manifest)
    assert "0 unreviewed · 1 failed" in page.inner_text("#counts")
    page.click("#filters button[data-filter=failed]")
    failed = page.locator("article.photo:visible")
    assert failed.count() == 1 and "broken.jpg" in failed.inner_text()
    assert "failed:" in failed.inner_text()
    page.click("#filters button[data-filter=waiting]")
    waiting = page.locator("article.photo:visible")
    assert "submitted: not collected yet" in waiting.inner_text()
    page.keyboard.press("a")  # only a collected result can be decided on
    assert "0 approved" in page.inner_text("#counts")
    assert _problems(page) == []


def test_cards_far_down_are_filled_when_the_keys_reach_them(tmp_path: Path, page: Page) -> None:
    """A long page builds only the cards near the screen; the arrows still reach the last."""
    manifest = ledger_listing(tmp_path, 60)
    _open(page, manifest)
    cards = page.locator("article.photo")
    assert cards.count() == 60
    last = cards.nth(59)
    assert last.locator("img").count() == 0  # far below the screen: an empty box for now
    for _ in range(59):
        page.keyboard.press("ArrowRight")
    assert "current" in (last.get_attribute("class") or "")
    assert last.locator("img").count() == 2 and "room-059.jpg" in last.inner_text()
    page.wait_for_function(
        "[...document.querySelectorAll('article.photo')[59].querySelectorAll('img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.keyboard.press("r")
    assert "0 approved · 1 rejected · 59 unreviewed" in page.inner_text("#counts")
    assert _problems(page) == []
