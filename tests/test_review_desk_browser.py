"""The review desk in a real headless Chromium, served by a real ``aihd review --serve``:
logging in by the printed link, culling by keyboard into the ledger, names from the disk that
run nothing, ordering again and delivering, and a collect beside it showing up by itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from pipeline.ledger import State, open_ledger
from pipeline.sandbox import Sandbox
from tests.browser_helpers import CHROMIUM, MISSING, watch
from tests.cli_helpers import aihd
from tests.desk_helpers import listing_photos, photo_ids, reviews_by_name, served_desk
from tests.review_helpers import PhotoFactory, collected_listing

# Slow: a Chromium, a desk process per test, pages that wait for images to decode.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING),
]

INSIDE = "listings/12-oak-st/inside"
DECODED = """(selector) => [...document.querySelectorAll(selector)]
  .every((img) => img.complete && img.naturalWidth > 0)"""


def _page(browser: Browser) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    return page, watch(page)


def _open(page: Page, link: str) -> None:
    page.goto(link)
    page.wait_for_selector("body[data-ready=true]", state="attached")


def _saved(page: Page) -> None:
    page.wait_for_selector('body[data-saving="0"]', state="attached")


def _exported(manifest: Path) -> dict[str, dict[str, object]]:
    done = aihd(["export", str(manifest), "--format", "jsonl"], None)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {Path(str(row["path"])).name: row for row in rows}


def test_twenty_decisions_by_keyboard_are_in_the_ledger_and_a_second_browser_sees_them(
    tmp_path: Path, browser: Browser
) -> None:
    """The printed link logs in and leaves the address bar; 20 key presses decide 20 photos,
    each moving on; a reload and a second browser (let in by a link the first made) see
    them; `aihd export` shows them; the printed link does not work twice."""
    names = [f"room-{n}.jpg" for n in range(1, 25)]  # room-2 before room-10
    manifest = listing_photos(tmp_path, {INSIDE: names})
    keys = ["r" if n % 4 == 3 else "a" for n in range(20)]
    with served_desk(manifest) as desk:
        page, problems = _page(browser)
        _open(page, desk.login_url)
        assert page.url == f"{desk.origin}/review/" and "token" not in page.url
        for key in keys:
            page.keyboard.press(key)
        _saved(page)
        counts = "24 photos · 4 to review · 15 approved · 5 rejected · 0 failed"
        assert counts in page.inner_text("#counts")
        page.reload()
        page.wait_for_selector("body[data-ready=true]", state="attached")
        assert counts in page.inner_text("#counts")

        page.click("#another-browser")
        page.wait_for_selector("#ask-title >> text=Let another browser in")
        link = page.inner_text("#ask-code")
        page.click("#ask-ok")
        second, second_problems = _page(browser)
        _open(second, link)
        assert counts in second.inner_text("#counts")
        fourth = second.locator("article.photo", has_text="room-4.jpg")
        assert "Rejected" in fourth.inner_text()
        third, _ = _page(browser)
        refused = third.goto(desk.login_url)
        assert refused is not None and refused.status == 403
        assert "used already" in third.inner_text("main")
        assert problems == [] and second_problems == []
    exported = _exported(manifest)
    decided = {name: exported[name]["decision"] for name in names[:20]}
    assert decided == {
        name: ("rejected" if key == "r" else "approved")
        for name, key in zip(names[:20], keys, strict=True)
    }
    assert {exported[name]["decision"] for name in names[20:]} == {None}
    assert {source for _, _, source in reviews_by_name(manifest).values()} == {"review desk"}


def test_names_from_the_disk_run_nothing_in_the_desk_nor_the_page(
    tmp_path: Path, browser: Browser
) -> None:
    """A photo named <img src=x onerror=alert(1)>.jpg in a folder named "><script>: shown as
    text, full size too; no dialog, no console error, in the desk and the static page."""
    hostile = "<img src=x onerror=alert(1)>.jpg"
    folder = 'listings/"><script>/inside'
    manifest = listing_photos(tmp_path, {folder: [hostile, "plain.jpg"]})
    with served_desk(manifest) as desk:
        page, problems = _page(browser)
        _open(page, desk.login_url)
        card = page.locator("article.photo").first
        assert hostile in card.inner_text()
        assert '"><script>' in page.inner_text("#listings")
        assert page.locator("main img[src=x]").count() == 0
        card.click()
        assert page.inner_text("#loupe-name") == hostile
        page.wait_for_function(DECODED, arg="#loupe img")
        page.keyboard.press("r")
        _saved(page)
        assert problems == []
    assert reviews_by_name(manifest)[hostile][0] == "rejected"

    done = aihd(["review", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    static, static_problems = _page(browser)
    _open(static, done.stdout.strip())
    assert hostile in static.locator("article.photo").first.inner_text()
    static.locator("article.photo").first.click()
    static.wait_for_function(DECODED, arg="#loupe img")
    assert static_problems == []


def test_culling_a_shoot_listing_by_listing(tmp_path: Path, browser: Browser) -> None:
    """Listings in natural order with counts; a reason typed; the rest of a listing approved
    at once; filters hide what they empty and say when nothing matches; order again shows
    its cost and asks once; a listing all decided is delivered."""
    manifest = listing_photos(
        tmp_path,
        {
            "listings/48-maple-ave/inside": ["img-10.jpg", "img-2.jpg"],
            "listings/5-walnut-way/inside": ["a.jpg", "b.jpg", "c.jpg"],
        },
    )
    with served_desk(manifest) as desk:
        page, problems = _page(browser)
        _open(page, desk.login_url)
        assert page.locator("#listing-list .listing-name").all_inner_texts() == [
            "5-walnut-way",
            "48-maple-ave",
        ]
        names = page.locator("article.photo .name").all_inner_texts()
        assert names == ["a.jpg", "b.jpg", "c.jpg", "img-2.jpg", "img-10.jpg"]
        assert "Image Enhancement · Indoor" in page.inner_text("section.folder h3 >> nth=0")

        page.keyboard.press("R")
        page.fill("#reason-text", "Sky looks painted on")
        page.keyboard.press("Enter")
        page.wait_for_selector("#reason-dialog", state="hidden")
        page.keyboard.press("A")
        page.wait_for_selector("#ask-text >> text=2 collected photos not decided yet")
        page.click("#ask-ok")
        _saved(page)
        walnut = page.locator("#listing-list button", has_text="5-walnut-way")
        assert "0 to review · 2 ✓ · 1 ✗ · 0 failed" in walnut.inner_text()
        heads = page.locator(".listing-head")
        assert heads.nth(0).locator("button.deliver").is_visible()
        assert not heads.nth(1).locator("button.deliver").is_visible()

        page.click("#filters button[data-filter=unreviewed]")
        assert page.locator("section.listing:visible h2").all_inner_texts() == ["48-maple-ave"]
        page.click("#filters button[data-filter=failed]")
        assert page.locator("section.listing:visible").count() == 0
        assert page.inner_text("#nothing") == "No photo failed."
        page.click("#filters button[data-filter=all]")

        page.locator("article.photo", has_text="a.jpg").click()
        assert "Rejected: Sky looks painted on" in page.inner_text("#loupe-verdict")
        page.wait_for_function(DECODED, arg="#loupe img")
        page.click("#loupe-reorder")
        page.wait_for_selector("#ask-title >> text=Order a.jpg again?")
        assert "It costs 1 credit" in page.inner_text("#ask-text")
        path = tmp_path / "listings/5-walnut-way/inside/a.jpg"
        assert page.inner_text("#ask-code") == f"aihd reorder {manifest} {path} --yes"
        page.click("#ask-ok")
        page.wait_for_selector("#loupe-state >> text=not ordered yet")
        page.keyboard.press("Escape")

        heads.nth(0).locator("button.deliver").click()
        page.wait_for_selector("#ask-title >> text=Deliver 5-walnut-way?")
        assert "2 approved photos" in page.inner_text("#ask-text")
        assert "1 photos not collected yet are left out" in page.inner_text("#ask-text")
        page.click("#ask-ok")
        page.wait_for_selector("#toast >> text=Delivered 2 photos")
        assert problems == []
    ledger = open_ledger(tmp_path / "desk.ledger.sqlite")
    try:
        (again,) = [r for r in ledger.photos() if r.path == str(path)]
        assert again.state is State.PENDING and not again.charged
    finally:
        ledger.close()
    assert reviews_by_name(manifest) == {
        "b.jpg": ("approved", None, "review desk"),
        "c.jpg": ("approved", None, "review desk"),
    }
    delivered = sorted(p.name for p in (tmp_path / "delivery" / "5-walnut-way").iterdir())
    assert delivered == ["01-b.jpg", "02-c.jpg", "disclosure.csv"]


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


def test_a_collect_beside_the_desk_shows_up_by_itself(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, browser: Browser
) -> None:
    """Photos ordered, not collected: the desk shows them waiting; `aihd collect` in another
    process: progress and cards change without a reload, the results' thumbnails load."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory, collect=False)
    with served_desk(manifest) as desk:
        page, problems = _page(browser)
        _open(page, desk.login_url)
        assert "5 waiting for results · 0 collected" in page.inner_text("#progress")
        assert "0 to review" in page.inner_text("#counts")
        done = aihd(["collect", str(manifest), "--wait", "--no-progress"], sandbox)
        assert done.returncode == 0, done.stderr
        page.wait_for_selector("#progress >> text=0 waiting for results · 5 collected")
        page.wait_for_selector("#counts >> text=5 to review")
        page.wait_for_function(DECODED, arg="article.photo img.thumb")
        assert page.locator("article.photo img.thumb").count() == 5
        page.keyboard.press("a")
        _saved(page)
        assert problems == []
    assert list(reviews_by_name(manifest).values()) == [("approved", None, "review desk")]


EVIL_PAGE = """<!doctype html>
<title>another site</title>
<form id="form" method="post" action="{desk}/review/api/decisions">
  <input name="photo_ids" value="{photo}"><input name="decision" value="rejected">
</form>
<script>
  fetch("{desk}/review/api/decisions", {{
    method: "POST", credentials: "include", headers: {{"Content-Type": "text/plain"}},
    body: JSON.stringify({{photo_ids: [{photo}], decision: "rejected"}}),
  }}).catch(() => null).then(() => {{
    document.title = "fetched";
    setTimeout(() => document.getElementById("form").submit(), 100);
  }});
</script>
"""


@pytest.fixture
def another_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A page on another port of this machine: another origin, but the same site, so the
    browser sends the desk's SameSite=Strict cookie along with what it posts."""
    root = tmp_path / "evil"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_another_origin_cannot_decide_even_with_the_cookie(
    tmp_path: Path, browser: Browser, another_site: tuple[str, Path]
) -> None:
    """Logged in, the browser visits a page on another port: its fetch and its form post to
    the desk (the cookie goes along: same site) are refused, and the ledger holds nothing."""
    manifest = listing_photos(tmp_path, {INSIDE: ["kitchen.jpg"]})
    kitchen = photo_ids(manifest)["kitchen.jpg"]
    site, root = another_site
    with served_desk(manifest) as desk:
        (root / "evil.html").write_text(EVIL_PAGE.format(desk=desk.origin, photo=kitchen))
        page, _ = _page(browser)
        _open(page, desk.login_url)
        with page.expect_navigation(url=f"{desk.origin}/review/api/decisions") as posted:
            page.goto(f"{site}/evil.html")
        answer = posted.value
        assert answer is not None and answer.status == 403
        # Refused for its Origin, a check made after the session's: the cookie went along.
        assert "another site" in answer.text()
        _open(page, f"{desk.origin}/review/")  # still logged in, nothing decided
        assert "1 to review · 0 approved · 0 rejected" in page.inner_text("#counts")
    assert reviews_by_name(manifest) == {}
