"""The static review page in a real headless Chromium: it loads clean, opens full size with a
slider, takes keys that decide and move on, filters, exports. (The served desk: see
test_review_desk_browser.py; both are the same template, script and style.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from pipeline.sandbox import Sandbox
from tests.browser_helpers import CHROMIUM, MISSING, watch
from tests.cli_helpers import FAST, aihd
from tests.desk_helpers import reviews_by_name
from tests.review_helpers import (
    INSIDE,
    PhotoFactory,
    collected_listing,
    ledger_listing,
)

# Slow: a Chromium, and pages that wait for images to decode.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING),
]

DECODED = """(selector) => [...document.querySelectorAll(selector)]
  .every((img) => img.complete && img.naturalWidth > 0)"""


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of a fresh browser context (no cookie, no storage, downloads accepted); what it
    does wrong is gathered in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        opened = context.new_page()
        opened.problems = watch(opened)  # type: ignore[attr-defined]
        yield opened
    finally:
        context.close()


def _open(page: Page, manifest: Path) -> None:
    done = aihd(["review", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    page.goto(done.stdout.strip())
    page.wait_for_selector("body[data-ready=true]", state="attached")


def _problems(page: Page) -> list[str]:
    return list(page.problems)  # type: ignore[attr-defined]


def test_page_loads_clean_and_full_size_opens_with_a_slider(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """No console error; thumbnails decode; z opens the full-size before/after, a click at
    20% moves the split there; Esc closes it, a click on a card opens it."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _open(page, manifest)
    assert page.locator("article.photo").count() == 5
    page.wait_for_function(DECODED, arg="article.photo img")
    assert "5 photos · 5 to review · 0 approved · 0 rejected · 0 failed" in page.inner_text(
        "#counts"
    )
    page.keyboard.press("z")
    loupe = page.locator("#loupe")
    assert loupe.is_visible() and "front.jpg" in page.inner_text("#loupe-name")
    page.wait_for_function(DECODED, arg="#loupe img")
    compare = page.locator("#loupe-compare")
    box = compare.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
    position = compare.evaluate("e => e.style.getPropertyValue('--pos')")
    assert 15 <= float(position.rstrip("%")) <= 25
    handle = page.locator("#loupe .handle").bounding_box()
    assert handle is not None
    assert abs(handle["x"] - (box["x"] + box["width"] * 0.2)) < box["width"] / 10
    clip = page.locator("#loupe-before").evaluate("e => getComputedStyle(e).clipPath")
    assert clip.startswith("inset(") and clip != "inset(0px 50% 0px 0px)"
    page.keyboard.press("Escape")
    assert not loupe.is_visible()
    page.locator("article.photo", has_text="kitchen.jpg").click()
    assert loupe.is_visible() and "kitchen.jpg" in page.inner_text("#loupe-name")
    assert _problems(page) == []


def test_keys_decide_and_move_on_and_the_export_applies(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """a / r decide and move to the next photo to review, R asks a reason, u undecides;
    the exported file (reasons too) records the same in the ledger."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _open(page, manifest)
    # The order on the page: front, yard (exterior first), then bath, den, kitchen.
    for key in ("a", "r"):
        page.keyboard.press(key)
    page.keyboard.press("R")
    assert page.locator("#reason-dialog").is_visible()
    page.keyboard.press("2")  # "Colours are off", and on to den
    page.keyboard.press("a")  # den approved; on to kitchen
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("u")  # den undecided again
    assert "2 to review · 1 approved · 2 rejected" in page.inner_text("#counts")
    bath = page.locator("article.photo", has_text="bath.jpg")
    assert "Rejected: Colours are off" in bath.inner_text()
    page.click("#filters button[data-filter=approved]")
    visible = page.locator("article.photo:visible")
    assert visible.count() == 1 and "front.jpg" in visible.first.inner_text()
    page.click("#filters button[data-filter=all]")
    page.locator("article.photo", has_text="yard.jpg").click()
    assert "aihd reorder" in page.inner_text("#loupe-hint")
    assert str(manifest) in page.inner_text("#loupe-hint")
    page.keyboard.press("Escape")

    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path / "decisions.json"
    download.value.save_as(exported)
    assert reviews_by_name(manifest) == {}
    done = aihd(["review", str(manifest), "--apply", str(exported)], None)
    assert done.returncode == 0, done.stderr
    assert reviews_by_name(manifest) == {
        "front.jpg": ("approved", None, str(exported)),
        "yard.jpg": ("rejected", None, str(exported)),
        "bath.jpg": ("rejected", "Colours are off", str(exported)),
    }
    assert _problems(page) == []

    _open(page, manifest)  # a new page starts from the ledger's decisions
    assert "2 to review · 1 approved · 2 rejected" in page.inner_text("#counts")
    assert _problems(page) == []


def test_failed_and_waiting_photos_show_their_state(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, page: Page
) -> None:
    """A broken file shows its error under the failed filter; a submitted one its state;
    a filter that empties a folder hides it, and one that matches nothing says so."""
    photo_factory(tmp_path / INSIDE, "kitchen.jpg")
    (tmp_path / INSIDE / "broken.jpg").write_bytes(b"\xff\xd8 not really a photo")
    manifest = tmp_path / "listing.yaml"
    manifest.write_text(
        f"version: 1\nledger: listing.ledger.sqlite\nfolders:\n  - path: {INSIDE}\n"
    )
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 1
    _open(page, manifest)
    assert "0 to review · 0 approved · 0 rejected · 1 failed" in page.inner_text("#counts")
    page.click("#filters button[data-filter=failed]")
    failed = page.locator("article.photo:visible")
    assert failed.count() == 1 and "broken.jpg" in failed.inner_text()
    failed.click()
    assert "failed:" in page.inner_text("#loupe-state")
    page.keyboard.press("Escape")
    page.click("#filters button[data-filter=waiting]")
    waiting = page.locator("article.photo:visible")
    assert "ordered: waiting for the result" in waiting.inner_text()
    page.keyboard.press("a")  # only a collected result can be decided on
    assert "0 approved" in page.inner_text("#counts")
    page.click("#filters button[data-filter=rejected]")
    assert page.locator("article.photo:visible").count() == 0
    assert page.locator("section.listing:visible").count() == 0  # no empty headings
    assert page.inner_text("#nothing") == "No photo is rejected."
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
    assert last.locator("img").count() == 1 and "room-059.jpg" in last.inner_text()
    page.wait_for_function(DECODED, arg="article.photo:last-child img")
    page.keyboard.press("r")
    assert "59 to review · 0 approved · 1 rejected" in page.inner_text("#counts")
    assert _problems(page) == []
