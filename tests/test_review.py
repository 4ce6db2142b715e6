"""``aihd review``, ``approve``, ``reject``: the page's files, and decisions in the ledger."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from pipeline.ledger import Decision, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import aihd, ledger_rows
from tests.review_helpers import (
    INSIDE,
    OUTSIDE,
    PhotoFactory,
    collected_listing,
    decisions_by_name,
    row_named,
)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


def _page_data(index: Path) -> dict[str, object]:
    text = (index.parent / "data.js").read_text()
    found = re.fullmatch(r"window\.AIHD_REVIEW = (.*);\n", text, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    assert isinstance(data, dict)
    return data


def _index_from(stdout: str) -> Path:
    (link,) = stdout.split()
    assert link.startswith("file://")
    return Path(unquote(urlparse(link).path))


def test_review_writes_a_page_with_thumbnails_made_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The page lists every photo, exteriors first, with both thumbnails; a rewrite makes none."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    done = aihd(["review", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    index = _index_from(done.stdout)
    assert index == tmp_path / "review" / "index.html"
    assert {p.name for p in index.parent.iterdir()} >= {"index.html", "review.js", "review.css"}
    assert "http" not in index.read_text() + (index.parent / "review.js").read_text()
    data = _page_data(index)
    photos = data["photos"]
    assert isinstance(photos, list)
    names = [p["name"] for p in photos]
    assert names == ["front.jpg", "yard.jpg", "bath.jpg", "den.jpg", "kitchen.jpg"]
    for photo in photos:
        assert photo["state"] == "completed" and photo["cost"] == 1 and photo["order_id"]
        for side in ("before", "after"):
            with Image.open(index.parent / photo[side]) as thumb:
                assert thumb.format == "JPEG" and max(thumb.size) <= 640
    assert "10 new thumbnails" in done.stderr

    again = aihd(["review", str(manifest)], None)
    assert again.returncode == 0, again.stderr
    assert "0 new thumbnails" in again.stderr


def test_photos_not_collected_show_their_state(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A submitted photo has its original but no result on the page, and its state."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory, collect=False)
    done = aihd(["review", str(manifest), "-o", str(tmp_path / "page")], None)
    assert done.returncode == 0, done.stderr
    photos = _page_data(tmp_path / "page" / "index.html")["photos"]
    assert isinstance(photos, list)
    assert {(p["state"], p["after"] is None, p["before"] is not None) for p in photos} == {
        ("submitted", True, True)
    }


def test_approve_and_reject_by_path_and_by_folder(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Paths of originals or results, or a whole folder; the latest decision stands."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    done = aihd(["approve", str(manifest), "--folder", OUTSIDE], None)
    assert done.returncode == 0, done.stderr
    assert "2 photos approved" in done.stdout
    kitchen_result = row_named(manifest, "kitchen.jpg").output_paths[0]
    done = aihd(["reject", str(manifest), kitchen_result, str(tmp_path / INSIDE / "den.jpg")], None)
    assert done.returncode == 0, done.stderr
    assert "2 photos rejected" in done.stdout
    assert f"`aihd reorder {manifest} {tmp_path / INSIDE / 'kitchen.jpg'} --yes`" in done.stderr
    done = aihd(["approve", str(manifest), str(tmp_path / INSIDE / "den.jpg")], None)
    assert done.returncode == 0, done.stderr
    assert decisions_by_name(manifest) == {
        "front.jpg": "approved",
        "yard.jpg": "approved",
        "kitchen.jpg": "rejected",
        "den.jpg": "approved",
    }


def test_deciding_on_a_photo_not_collected_or_unknown_is_refused(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Exit 2 with a line naming the photo and the fix; nothing recorded."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory, collect=False)
    den = tmp_path / INSIDE / "den.jpg"
    done = aihd(["approve", str(manifest), str(den)], None)
    assert done.returncode == 2
    assert f"{den}: is submitted, not completed" in done.stderr and "aihd collect" in done.stderr
    stranger = tmp_path / "elsewhere.jpg"
    done = aihd(["reject", str(manifest), str(stranger)], None)
    assert done.returncode == 2
    assert f"{stranger}: not a photo of listing.yaml" in done.stderr
    done = aihd(["approve", str(manifest)], None)
    assert done.returncode == 2 and "photo paths or --folder" in done.stderr
    done = aihd(["approve", str(manifest), "--folder", "nope"], None)
    assert done.returncode == 2 and INSIDE in done.stderr
    assert "Traceback" not in done.stderr
    assert decisions_by_name(manifest) == {}


def _decisions_file(path: Path, entries: list[dict[str, object]]) -> Path:
    doc = {"format": "aihd-review-decisions", "version": 1, "decisions": entries}
    path.write_text(json.dumps(doc))
    return path


def test_apply_records_an_exported_decisions_file(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """--apply records each entry; an entry of another ledger or photo spoils the whole file."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    front, den = row_named(manifest, "front.jpg"), row_named(manifest, "den.jpg")
    entry = {"photo_id": front.id, "path": front.path, "sha256": front.sha256}
    good = _decisions_file(
        tmp_path / "good.json",
        [
            {**entry, "decision": "approved"},
            {"photo_id": den.id, "path": den.path, "sha256": den.sha256, "decision": "rejected"},
        ],
    )
    bad = _decisions_file(
        tmp_path / "bad.json",
        [{**entry, "decision": "rejected"}, {**entry, "sha256": "0" * 64, "decision": "approved"}],
    )
    done = aihd(["review", str(manifest), "--apply", str(bad)], None)
    assert done.returncode == 2
    assert f"{bad}: decisions[1]: {front.path} is not photo {front.id}" in done.stderr
    assert decisions_by_name(manifest) == {}

    done = aihd(["review", str(manifest), "--apply", str(good)], None)
    assert done.returncode == 0, done.stderr
    assert "recorded 1 approved, 1 rejected" in done.stdout
    assert decisions_by_name(manifest) == {"front.jpg": "approved", "den.jpg": "rejected"}


def test_apply_refuses_a_file_that_is_not_a_decisions_file(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Broken JSON names file:line; another JSON names the format; both exit 2."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "format": "aihd-review-decisions",\n "decisions": [,]\n}')
    done = aihd(["review", str(manifest), "--apply", str(broken)], None)
    assert done.returncode == 2
    assert f"{broken}:3: not JSON" in done.stderr
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    done = aihd(["review", str(manifest), "--apply", str(other)], None)
    assert done.returncode == 2 and "not an aihd decisions file" in done.stderr


def test_reviews_live_in_a_table_of_their_own(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A decision leaves the photo's row and state alone, and records when and by what."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    before = ledger_rows(manifest)
    assert aihd(["reject", str(manifest), "--folder", INSIDE], None).returncode == 0
    assert [r._replace(updated_at="") for r in ledger_rows(manifest)] == [
        r._replace(updated_at="") for r in before
    ]
    conn = sqlite3.connect(manifest.with_name("listing.ledger.sqlite"))
    try:
        rows = conn.execute("SELECT decision, source, decided_at FROM reviews").fetchall()
    finally:
        conn.close()
    assert len(rows) == 3
    assert all(r[0] == "rejected" and r[1] == "aihd reject" and r[2] for r in rows)


def test_a_ledger_from_before_reviews_gains_the_table(tmp_path: Path) -> None:
    """An older ledger is migrated in place: its photos stay, decisions can be recorded."""
    from pipeline.ledger import migrations as _migrations

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    before = _migrations.MIGRATIONS.index(_migrations._v4_reviews)
    conn.execute(f"PRAGMA application_id = {_migrations.APPLICATION_ID}")
    for migration in _migrations.MIGRATIONS[:before]:
        migration(conn)
    conn.execute(f"PRAGMA user_version = {before}")
    conn.close()
    ledger = open_ledger(path)
    try:
        assert ledger.reviews() == {}
        assert ledger.record_reviews([1], Decision.APPROVED, "test") == 0  # no such photo
    finally:
        ledger.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (_migrations.SCHEMA_VERSION,)
    finally:
        conn.close()
