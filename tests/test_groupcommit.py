"""Group commit: writes queued in one turn of the loop share one commit, each caller its result."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import LedgerError
from pipeline.ledger import FoundPhoto, PhotoOptions, PhotoRow, State, open_ledger
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.ledger.sqlite import SqliteLedger

OPTIONS = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    opened = open_ledger(tmp_path / "run.ledger.sqlite")
    yield opened
    opened.close()


def rows(ledger: SqliteLedger, count: int) -> list[PhotoRow]:
    found = [
        FoundPhoto(f"/p/{n}.jpg", "listing", 10, n, f"{n:064x}", OPTIONS) for n in range(count)
    ]
    return ledger.record_found(found)


def states_on_disk(path: Path) -> dict[int, tuple[str, str | None]]:
    """What another process would read now: committed rows only."""
    other = sqlite3.connect(path)
    try:
        return {r[0]: (r[1], r[2]) for r in other.execute("SELECT id, state, order_id FROM photos")}
    finally:
        other.close()


def test_writes_of_one_turn_share_one_commit_and_are_on_disk_when_awaited(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    photos = rows(ledger, 8)
    writes = GroupCommit(ledger)

    async def scenario() -> list[PhotoRow]:
        return await asyncio.gather(
            *(writes.call(ledger.mark_uploaded, row.id, f"order-{row.id}") for row in photos)
        )

    done = asyncio.run(scenario())
    assert [row.state for row in done] == [State.UPLOADED] * 8
    assert (writes.commits, writes.writes) == (1, 8)
    on_disk = states_on_disk(tmp_path / "run.ledger.sqlite")
    assert all(on_disk[row.id] == ("uploaded", f"order-{row.id}") for row in photos)


def test_intent_is_committed_before_the_caller_resumes(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    (photo,) = rows(ledger, 1)
    writes = GroupCommit(ledger)

    async def scenario() -> tuple[str, str | None]:
        await writes.call(ledger.mark_submitting, photo.id, "order-1")
        # Here the order POST would leave: another connection must already see the intent.
        return states_on_disk(tmp_path / "run.ledger.sqlite")[photo.id]

    assert asyncio.run(scenario()) == ("submitting", "order-1")


def test_a_refused_write_fails_alone_and_the_others_commit(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    first, second, third = rows(ledger, 3)
    writes = GroupCommit(ledger)

    async def scenario() -> list[PhotoRow | BaseException]:
        return await asyncio.gather(
            writes.call(ledger.mark_uploaded, first.id, "order-a"),
            writes.call(ledger.mark_submitting, second.id),  # pending, no order: refused
            writes.call(ledger.mark_uploaded, third.id, "order-c"),
            return_exceptions=True,
        )

    one, refused, three = asyncio.run(scenario())
    assert isinstance(one, PhotoRow) and isinstance(three, PhotoRow)
    assert isinstance(refused, LedgerError)
    assert "refusing to submit /p/1.jpg" in str(refused)
    assert writes.commits == 1
    on_disk = states_on_disk(tmp_path / "run.ledger.sqlite")
    assert on_disk[first.id] == ("uploaded", "order-a")
    assert on_disk[second.id] == ("pending", None)
    assert on_disk[third.id] == ("uploaded", "order-c")


def test_a_lost_transaction_fails_every_caller_and_nothing_is_written(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    first, second = rows(ledger, 2)
    writes = GroupCommit(ledger)
    blocker = sqlite3.connect(tmp_path / "run.ledger.sqlite", timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file: the group cannot begin

    async def scenario() -> list[PhotoRow | BaseException]:
        return await asyncio.gather(
            writes.call(ledger.mark_uploaded, first.id, "order-a"),
            writes.call(ledger.mark_uploaded, second.id, "order-b"),
            return_exceptions=True,
        )

    ledger._conn.execute("PRAGMA busy_timeout = 0")  # fail at once, not after 5 s
    try:
        outcomes = asyncio.run(scenario())
    finally:
        blocker.rollback()
        blocker.close()
    assert all(isinstance(o, LedgerError) for o in outcomes), outcomes
    assert "locked" in str(outcomes[0])
    assert writes.commits == 0
    on_disk = states_on_disk(tmp_path / "run.ledger.sqlite")
    assert on_disk[first.id] == on_disk[second.id] == ("pending", None)
