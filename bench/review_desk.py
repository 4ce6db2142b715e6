"""The review desk on a 2,000-photo account, with `aihd run` ordering beside it on the same ledger.

2,000 completed photos (small JPEG originals and results, 10 listings of an exterior and an
interior folder, as bench/review_page.py) are put in an account ledger; a second manifest of
the same account has 2,000 tiny photos to order. `aihd review bench.yaml --serve` runs as a
child process, as a user starts it. Then:

- first open: a fresh headless Chromium context follows the printed login link, from `goto`
  until every card is built (`body[data-ready]`) and the first screen's thumbnails are decoded;
  none of them existed before, so the desk makes them while the page waits;
- `aihd run` of the second manifest starts against `aihd sandbox` (50 ms per request), on the
  same ledger; once it has placed 20 orders, while it goes on ordering:
- five more opens, each a fresh context let in by a link the first session made;
- 200 decisions (approve, or reject with a reason), each a POST timed from sending to the
  desk's answer, which comes after the ledger committed it; one after another, as a person.

`python -m bench.review_desk screenshot MANIFEST PNG` takes the README's picture of the desk
(the demo's: see the Makefile's demo target).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, Figure, make_photos, sandbox, write_manifest
from bench.review_page import _completed_photo
from pipeline import api
from pipeline.ledger import PhotoOptions, open_ledger

PHOTOS = 2000
LISTINGS = 10
RUN_PHOTOS = 2000
OPENS = 5
DECISIONS = 200
OPEN_TARGET_SECONDS = 2.0
DECISION_TARGET_MS = 50.0
COMMAND = "python -m bench review-desk"
FIRST_SCREEN_DECODED = """() => {
  if (document.body.dataset.ready !== "true") return false;
  const shown = [...document.querySelectorAll('article.photo img')].filter((img) => {
    const box = img.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  });
  return shown.length > 0 && shown.every((img) => img.complete && img.naturalWidth > 0);
}"""


def _account(root: Path) -> tuple[Path, Path]:
    """The desk's manifest (2,000 completed photos) and the run's (2,000 to order), one ledger."""
    ledger_path = root / "account.ledger.sqlite"
    lines = ["version: 1", f"ledger: {ledger_path}", "folders:"]
    per_folder = PHOTOS // (LISTINGS * 2)
    options = {
        "outside": PhotoOptions(api.SERVICE, "space-ie-outdoor", ("remove extra objects",)),
        "inside": PhotoOptions(api.SERVICE, "space-ie-indoor", ("add fire to fireplace",)),
    }
    ledger = open_ledger(ledger_path)
    n = 0
    try:
        with ledger.grouped():
            for listing in range(LISTINGS):
                for part in ("inside", "outside"):
                    name = f"listings/{listing + 1}-main-st/{part}"
                    space = "outdoor" if part == "outside" else "indoor"
                    lines += [f"  - path: {name}", f"    space: {space}"]
                    for _ in range(per_folder):
                        _completed_photo(root, name, n, options[part], ledger)
                        n += 1
    finally:
        ledger.close()
    desk = root / "bench.yaml"
    desk.write_text("\n".join(lines) + "\n")
    make_photos(root / "run" / "photos", RUN_PHOTOS)
    run = write_manifest(
        root / "run", orders=100_000, per_seconds=1, concurrency=4, ledger=str(ledger_path)
    )
    return desk, run


def _open_seconds(browser: object, link: str) -> float:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(link)
        page.wait_for_function(FIRST_SCREEN_DECODED, polling=20, timeout=60_000)
        seconds = time.perf_counter() - started
        cards = page.locator("article.photo").count()
        if cards != PHOTOS:
            raise RuntimeError(f"the desk shows {cards} photos, not {PHOTOS}")
        return seconds
    finally:
        context.close()


def _decision_ms(session: object, photo_ids: list[int]) -> list[float]:
    from tests.desk_helpers import Browserless

    assert isinstance(session, Browserless)
    times = []
    for n, photo_id in enumerate(photo_ids):
        body: dict[str, object] = {"photo_ids": [photo_id], "decision": "approved"}
        if n % 3 == 2:
            body = {"photo_ids": [photo_id], "decision": "rejected", "reason": "Colours are off"}
        started = time.perf_counter()
        answer = session.post("/review/api/decisions", body)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status != 200 or answer.json() != {
            "recorded": 1,
            "decision": body["decision"],
            "reason": body.get("reason"),
        }:
            raise RuntimeError(f"decision {n} not saved: {answer.status} {answer.text}")
    return times


def run() -> list[Figure]:
    from tests.browser_helpers import chromium_browser
    from tests.desk_helpers import served_desk

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = time.perf_counter()
        desk_manifest, run_manifest = _account(root)
        made = time.perf_counter() - made
        with (
            served_desk(desk_manifest) as desk,
            chromium_browser() as browser,
            sandbox(latency=0.05) as box,
        ):
            session = desk.log_in()
            state_kb = len(session.get("/review/api/state").body) / 1024
            first = _open_seconds(browser, _link(session))
            env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
            beside = subprocess.Popen(
                [PYTHON, "-m", "pipeline", "run", str(run_manifest), "--no-progress"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for_orders(box, 20)
                charged_before = _charged(box)
                opens = [_open_seconds(browser, _link(session)) for _ in range(OPENS)]
                photos = session.state()["photos"]
                assert isinstance(photos, list)
                ids = [int(str(p["id"])) for p in photos][:DECISIONS]
                times = _decision_ms(session, ids)
                charged_during = _charged(box) - charged_before
                still_ordering = beside.poll() is None
            finally:
                code = beside.wait(timeout=600)
    median_open, worst_open = statistics.median(opens), max(opens)
    median_ms = statistics.median(times)
    p95_ms = statistics.quantiles(times, n=20)[-1]
    print(
        f"review desk: {PHOTOS} photos (made in {made:.0f} s), state {state_kb:.0f} KB; first "
        f"open {first:.2f} s; opens beside the run "
        + ", ".join(f"{t:.2f}" for t in opens)
        + f" s; {DECISIONS} decisions: median {median_ms:.1f} ms, p95 {p95_ms:.1f} ms, worst "
        f"{max(times):.1f} ms; the run placed {charged_during} orders meanwhile and was still "
        f"ordering at the end: {still_ordering}; its exit {code}"
    )
    return [
        Figure(
            f"review desk, {PHOTOS}-photo account: open in headless Chromium while `aihd run` "
            f"orders beside it (median, worst of {OPENS})",
            f"{median_open:.2f} s, {worst_open:.2f} s",
            f"< {OPEN_TARGET_SECONDS:g} s",
            worst_open < OPEN_TARGET_SECONDS,
            COMMAND,
        ),
        Figure(
            f"review desk, {PHOTOS}-photo account: first open, the first screen's thumbnails "
            "made while it waits",
            f"{first:.2f} s",
            "figure only",
            None,
            COMMAND,
        ),
        Figure(
            f"review desk: a decision saved in the ledger while `aihd run` orders beside it "
            f"(median, p95 of {DECISIONS})",
            f"{median_ms:.1f} ms, {p95_ms:.1f} ms ({charged_during} orders placed meanwhile)",
            f"< {DECISION_TARGET_MS:g} ms median",
            median_ms < DECISION_TARGET_MS and still_ordering,
            COMMAND,
        ),
    ]


def _link(session: object) -> str:
    from tests.desk_helpers import Browserless

    assert isinstance(session, Browserless)
    answer = session.post("/review/api/login-links", {})
    url = answer.json()["url"]  # type: ignore[index]
    assert isinstance(url, str)
    return url


def _charged(box: object) -> int:
    from bench.common import Sandbox

    assert isinstance(box, Sandbox)
    return int(str(box.stats()["orders_charged"]))


def _wait_for_orders(box: object, count: int) -> None:
    deadline = time.monotonic() + 120
    while _charged(box) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the run beside the desk placed no orders in 2 minutes")
        time.sleep(0.2)


def screenshot(manifest: Path, png: Path) -> None:
    """The desk of ``manifest`` as a person first sees it: two photos decided (then taken
    back, so the demo's ledger is left as it was), the third selected."""
    from tests.browser_helpers import chromium
    from tests.desk_helpers import served_desk

    with served_desk(manifest) as desk, chromium(width=1280, height=860) as context:
        tab = context.new_page()
        tab.goto(desk.login_url)
        tab.wait_for_function(FIRST_SCREEN_DECODED, polling=50)
        undecided = tab.locator("article.photo[data-decision='']").count()
        for key in ("a", "r"):
            tab.keyboard.press(key)
        tab.wait_for_selector('body[data-saving="0"]', state="attached")
        tab.wait_for_timeout(300)
        tab.screenshot(path=str(png))
        if undecided == tab.locator("article.photo").count():  # none was decided before
            for _ in range(2):
                tab.keyboard.press("ArrowLeft")
            for _ in range(2):
                tab.keyboard.press("u")
                tab.keyboard.press("ArrowRight")
            tab.wait_for_selector('body[data-saving="0"]', state="attached")


if __name__ == "__main__":
    if sys.argv[1:2] == ["screenshot"] and len(sys.argv) == 4:
        screenshot(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print("usage: python -m bench.review_desk screenshot MANIFEST OUT.png", file=sys.stderr)
        sys.exit(2)
