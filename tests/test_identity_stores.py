"""A photo's identity in both stores (SQLite and a real PostgreSQL): ledgers of the previous
schema migrated with their identities kept, their catalog entries and ignored photos taken in;
one order window per account; ignored content (issues 20.3, 20.10, 20.11)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline import api
from pipeline.ledger import (
    UNSETTLED,
    ChoiceEntry,
    Counterpart,
    FoundPhoto,
    Ledger,
    PhotoOptions,
    State,
    WindowFull,
    WindowRule,
    open_ledger,
)
from pipeline.ledger import migrations as sqlite_schema
from pipeline.ledger import postgres_schema as pg_schema
from pipeline.ledger.stores import is_url
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, write_manifest

PhotoFactory = Callable[..., Path]
FIRE = "add fire to fireplace"
INDOOR = PhotoOptions(api.SERVICE, "space-ie-indoor", (FIRE,))
ITEM_SCOPE = f"{api.SERVICE}\x1fspace-ie-indoor"


@pytest.fixture
def ledger(location: str) -> Iterator[Ledger]:
    opened = open_ledger(location)
    yield opened
    opened.close()


def _previous_schema(location: str, photos: list[tuple[str, str]], ignored: list[str]) -> None:
    """A ledger as the previous release left it: (path, sha256) photos charged for indoor and
    "Add Fire to Fireplace", the toggle's spelling kept, ``ignored`` paths."""
    now = "2026-01-01T00:00:00.000+00:00"
    rows = [
        (path, "inside", sha, 1, 1, INDOOR.service, INDOOR.space, json.dumps([FIRE]),
         INDOOR.identity(sha), "submitted", now, now, 1)
        for path, sha in photos
    ]  # fmt: skip
    insert = (
        "INSERT INTO photos (id, path, folder, sha256, size, mtime_ns, service, space, "
        "enhancements, identity, state, created_at, updated_at, charged) VALUES ({})"
    )
    if is_url(location):
        with psycopg.connect(location, autocommit=True) as pg:
            pg.execute("CREATE TABLE aihd_schema (version INTEGER NOT NULL)")
            pg.execute("INSERT INTO aihd_schema VALUES (3)")
            for pg_migration in pg_schema.MIGRATIONS[:3]:
                pg_migration(pg)
            for n, row in enumerate(rows, 1):
                pg.execute(insert.format(", ".join(["%s"] * 14)), (n, *row))
            pg.execute("INSERT INTO titles VALUES (%s, 'Add Fire to Fireplace')", (FIRE,))
            for path in ignored:
                pg.execute("INSERT INTO ignored VALUES (%s, %s, 'broken')", (path, now))
        return
    conn = sqlite3.connect(location, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {sqlite_schema.APPLICATION_ID}")
    for migration in sqlite_schema.MIGRATIONS[:6]:
        migration(conn)
    conn.execute("PRAGMA user_version = 6")
    for n, row in enumerate(rows, 1):
        conn.execute(insert.format(", ".join("?" * 14)), (n, *row))
    conn.execute("INSERT INTO titles VALUES (?, 'Add Fire to Fireplace')", (FIRE,))
    for path in ignored:
        conn.execute("INSERT INTO ignored VALUES (?, ?, 'broken')", (path, now))
    conn.close()


def test_a_ledger_of_the_previous_schema_keeps_its_identities_and_gains_its_entries(
    location: str,
) -> None:
    """Migrated in place: identities untouched, the catalog entries its photos name (with the
    toggle's spelling), the ignored path's content, and its order posts count for every
    account."""
    _previous_schema(location, [("/l/a.jpg", "a" * 64), ("/l/b.jpg", "b" * 64)], ["/l/b.jpg"])
    ledger = open_ledger(location)
    try:
        rows = ledger.photos()
        assert [r.identity for r in rows] == [INDOOR.identity("a" * 64), INDOOR.identity("b" * 64)]
        assert ledger.catalog_choices() == [
            ChoiceEntry("item", ITEM_SCOPE, FIRE, None, None, "Add Fire to Fireplace"),
            ChoiceEntry("space", api.SERVICE, "space-ie-indoor", None, "space-ie-indoor", None),
        ]
        assert ledger.ignored_contents() == {"b" * 64}
        assert ledger.ignored_paths() == {"/l/b.jpg"}
    finally:
        ledger.close()


def test_a_slug_renamed_after_the_upgrade_orders_nothing_again(
    location: str, sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Photos paid by the previous release: the first night of this one orders nothing and
    learns the space's id and title; the API then renames its slug: still nothing."""
    photos = [photo_factory(tmp_path / "inside", f"p{n}.jpg") for n in range(3)]
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos]
    _previous_schema(location, [(str(p), sha) for p, sha in zip(photos, shas, strict=True)], [])
    manifest = write_manifest(tmp_path, {"inside": ("indoor", ["Add Fire to Fireplace"])},
                              ledger=location)  # fmt: skip
    for night in ("after the upgrade", "after the slug was renamed"):
        done = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
        assert done.returncode == 0, (night, done.stderr)
        assert json.loads(done.stdout)["orders_spent"] == 0, night
        if night == "after the upgrade":
            sandbox.rename_catalog_entry("space", "space-ie-indoor", "name", "space-ie-interior")
    assert sandbox.stats().charges == {}
    ledger = open_ledger(location)
    try:
        spaces = [e for e in ledger.catalog_choices() if e.kind == "space"]
        indoor = next(e for e in spaces if e.key == "space-ie-indoor")
        assert (indoor.name, indoor.title) == ("space-ie-interior", "Indoor")
        assert {r.state for r in ledger.photos()} == {State.SUBMITTED}
    finally:
        ledger.close()


def test_each_account_has_its_own_window_and_older_posts_count_in_every_one(
    ledger: Ledger,
) -> None:
    """Two orders fill account a's window of two; account b still has room; an order of no
    account (recorded before accounts were) counts in both."""
    rows = ledger.record_found(
        [FoundPhoto(f"/m/{n}.jpg", "/m", 1, 1, f"{n:064d}", INDOOR) for n in range(6)]
    )
    north = WindowRule(orders=2, per_seconds=60, answer_within=5, account="default@north")
    south = WindowRule(orders=2, per_seconds=60, answer_within=5, account="default@south")
    for row in rows[:2]:
        ledger.mark_submitting(row.id, f"order-{row.id}", window=north)
    with pytest.raises(WindowFull):
        ledger.mark_submitting(rows[2].id, "order-x", window=north)
    ledger.mark_submitting(rows[2].id, "order-2", window=south)
    older = WindowRule(orders=99, per_seconds=60, answer_within=5)  # of no account: ''
    ledger.mark_submitting(rows[3].id, "order-3", window=older)
    with pytest.raises(WindowFull):
        ledger.mark_submitting(rows[4].id, "order-4", window=south)
    assert ledger.window_wait(south) > 0 and ledger.window_wait(older) == 0
    assert len(ledger.recent_posts(60, "default@north")) == 3
    assert len(ledger.recent_posts(60, "default@south")) == 2
    assert len(ledger.recent_posts(60)) == 4  # no account given: every account's


def test_ignored_content_is_kept_once_and_imports_bring_their_entries(
    ledger: Ledger, tmp_path: Path
) -> None:
    assert ledger.ignore_contents([("c" * 64, "/m/c.jpg"), ("d" * 64, "/m/d.jpg")], "no") == 2
    assert ledger.ignore_contents([("c" * 64, "/m/renamed.jpg")], "again") == 0
    assert ledger.ignored_contents() == {"c" * 64, "d" * 64}
    other = open_ledger(tmp_path / "other.ledger.sqlite")
    try:
        other.keep_catalog_choices(
            [ChoiceEntry("space", api.SERVICE, "space-x", "id-x", "space-x", "X")]
        )
        other.ignore_contents([("e" * 64, "/o/e.jpg")], "theirs")
    finally:
        other.close()
    assert ledger.import_ledger(tmp_path / "other.ledger.sqlite") == 0
    assert ledger.ignored_contents() == {"c" * 64, "d" * 64, "e" * 64}
    assert [e.key for e in ledger.catalog_choices()] == ["space-x"]


def test_a_charged_counterpart_makes_a_copy_and_an_unsure_or_unsettled_one_holds(
    ledger: Ledger,
) -> None:
    """A v3 photo whose v1 counterpart was charged is a copy of that order; one that differs
    by a toggle without a counterpart is held; one whose v1 order is unsettled is held too;
    --retry-failed frees none of them."""
    plain = PhotoOptions(api.SERVICE, "space-ie-indoor", ())
    extra = PhotoOptions(api.SERVICE, "space-ie-indoor", ("remove extra objects",))
    v3 = PhotoOptions("v3:tool-image-enhancement", "indoor", ("item-indoor-widget-area",))
    shas = [f"{n:064d}" for n in (1, 2, 3)]
    v1_rows = ledger.record_found(
        [
            FoundPhoto("/v1/a.jpg", "/v1", 1, 1, shas[0], plain),
            FoundPhoto("/v1/b.jpg", "/v1", 1, 1, shas[1], extra),
            FoundPhoto("/v1/c.jpg", "/v1", 1, 1, shas[2], plain),
        ]
    )
    for row in v1_rows:
        ledger.mark_submitting(row.id, f"order-{row.id}")
    for row in v1_rows[:2]:
        ledger.mark_submitted(row.id, None, None, answered=True)
    counterparts = (Counterpart(plain), Counterpart(extra, "paid through v1 with 'X'"))
    found = [
        FoundPhoto(f"/v3/{n}.jpg", "/v3", 1, 1, sha, v3, "/m/v3.yaml", counterparts)
        for n, sha in enumerate(shas)
    ]
    copy, held, unsettled = ledger.record_found(found)
    assert (copy.state, copy.duplicate_of) == (State.DUPLICATE, v1_rows[0].id)
    assert (held.state, held.duplicate_of) == (State.FAILED, v1_rows[1].id)
    assert held.error is not None and held.error.startswith("held: paid through v1 with 'X'")
    assert "`aihd reorder /m/v3.yaml /v3/1.jpg --yes`" in held.error
    assert (unsettled.state, unsettled.duplicate_of) == (State.FAILED, v1_rows[2].id)
    assert unsettled.error is not None and UNSETTLED in unsettled.error
    assert ledger.reset_failed(include_permanent=True) == 0
    again = ledger.record_found(
        [FoundPhoto("/v3/x.jpg", "/v3", 1, 1, shas[1], v3, "", counterparts)]
    )
    assert again[0].state is State.FAILED  # a held photo is never an original for a copy
