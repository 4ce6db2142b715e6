"""Decisions in the ledger, on both stores: a rejection's reason, taking a decision back, and
a photo ordered again losing the decision on its old result."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ledger import Decision, FoundPhoto, Ledger, PhotoOptions, State, open_ledger
from pipeline.ledger import migrations as sqlite_migrations

INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A ledger of each store with three completed photos and one still waiting."""
    if request.param == "sqlite":
        where: Path | str = tmp_path / "desk.ledger.sqlite"
    else:
        where = request.getfixturevalue("pg_url")
    opened = open_ledger(where)
    rows = opened.record_found(
        [FoundPhoto(f"/p/{n}.jpg", "/p", 10, 1, f"{n}" * 64, INDOOR) for n in range(4)]
    )
    for n, row in enumerate(rows):
        opened.mark_uploaded(row.id, f"order-{n}")
        opened.mark_submitting(row.id)
        opened.mark_submitted(row.id, f"image-{n}", 30)
        if n < 3:
            opened.mark_completed(row.id, [f"http://r/{n}"], [f"/out/{n}.jpg"])
    yield opened
    opened.close()


def _ids(ledger: Ledger) -> list[int]:
    return [row.id for row in sorted(ledger.photos(), key=lambda r: r.path)]


def test_a_rejection_keeps_its_reason_and_an_approval_replaces_it(ledger: Ledger) -> None:
    first, second, third, waiting = _ids(ledger)
    assert ledger.record_reviews([first, second], Decision.REJECTED, "desk", "too dark") == 2
    assert ledger.record_reviews([third, waiting], Decision.APPROVED, "desk") == 1  # completed only
    reviews = ledger.reviews()
    assert {i: (r.decision, r.reason, r.source) for i, r in reviews.items()} == {
        first: (Decision.REJECTED, "too dark", "desk"),
        second: (Decision.REJECTED, "too dark", "desk"),
        third: (Decision.APPROVED, None, "desk"),
    }
    ledger.record_reviews([first], Decision.APPROVED, "aihd approve")
    assert ledger.reviews()[first].reason is None


def test_a_decision_taken_back_leaves_the_photo_undecided(ledger: Ledger) -> None:
    first, second, _, _ = _ids(ledger)
    ledger.record_reviews([first, second], Decision.APPROVED, "desk")
    assert ledger.clear_reviews([first, 999_999]) == 1
    assert set(ledger.reviews()) == {second}
    assert ledger.get(first).state is State.COMPLETED  # the photo itself is untouched


def test_a_photo_ordered_again_loses_the_decision_on_its_old_result(ledger: Ledger) -> None:
    first, second, _, _ = _ids(ledger)
    ledger.record_reviews([first, second], Decision.REJECTED, "desk", "artefacts")
    (again,) = ledger.reorder([first])
    assert again.state is State.PENDING and not again.charged
    assert set(ledger.reviews()) == {second}


def test_a_ledger_from_before_reasons_gains_the_column(tmp_path: Path) -> None:
    """An SQLite ledger one migration behind keeps its decisions and takes reasons."""
    path = tmp_path / "old.sqlite"
    made = open_ledger(path)
    (row,) = made.record_found([FoundPhoto("/p/a.jpg", "/p", 10, 1, "a" * 64, INDOOR)])
    made.mark_uploaded(row.id, "order-a")
    made.mark_submitting(row.id)
    made.mark_submitted(row.id, "image-a", 30)
    made.mark_completed(row.id, ["http://r/a"], ["/out/a.jpg"])
    made.record_reviews([row.id], Decision.APPROVED, "aihd approve")
    made.close()
    before = sqlite_migrations.MIGRATIONS.index(sqlite_migrations._review_reasons)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("ALTER TABLE reviews DROP COLUMN reason")  # as the ledger was before it,
    # and before the migrations after it, which run again from there:
    conn.execute("ALTER TABLE delivered_files DROP COLUMN made_from")
    conn.execute("ALTER TABLE photos DROP COLUMN claim_fence")
    conn.execute("ALTER TABLE order_posts DROP COLUMN send_within")
    conn.execute("DROP TABLE upscale_wishes")  # aihd serve's (_serve_upscales)
    conn.execute("DROP TABLE upscales")
    conn.execute("DROP INDEX photos_order")
    conn.execute(f"PRAGMA user_version = {before}")
    conn.close()
    ledger = open_ledger(path)
    try:
        assert ledger.reviews()[row.id].decision is Decision.APPROVED
        assert ledger.reviews()[row.id].reason is None
        ledger.record_reviews([row.id], Decision.REJECTED, "desk", "blurred")
        assert ledger.reviews()[row.id].reason == "blurred"
    finally:
        ledger.close()
