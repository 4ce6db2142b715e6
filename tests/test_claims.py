"""Claims keep two runs of the account off one photo, on both stores (a SQLite file and a real
PostgreSQL): a live run's claim is refused to another, a lapsed or dead run's is taken, and a
charged photo's claim ends with its charge, so a run renews only the claims it still needs."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from pipeline.bootclock import boot_id
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, open_ledger

INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky",))
ELSEWHERE = "host-elsewhere|boot|1|run"  # a run on another machine: alive until its lease lapses


@pytest.fixture
def two(location: str) -> Iterator[tuple[Ledger, Ledger]]:
    a, b = open_ledger(location), open_ledger(location)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _photos(ledger: Ledger, count: int) -> list[int]:
    """Photos each in a folder of its own: a PostgreSQL claim takes no other with it."""
    found = [
        FoundPhoto(f"/m/{n}/p.jpg", f"/m/{n}", 100, 1, f"{n:064d}", INDOOR) for n in range(count)
    ]
    return [row.id for row in ledger.record_found(found)]


def _holders(location: str) -> dict[int, str | None]:
    query = "SELECT id, claimed_by FROM photos ORDER BY id"
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            return {int(i): h for i, h in conn.execute(query).fetchall()}
    with sqlite3.connect(location) as conn:
        return {int(i): h for i, h in conn.execute(query).fetchall()}


def _dead_owner() -> str:
    """A run of this host and boot whose process has exited."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return f"{socket.gethostname()}|{boot_id()}|{int(gone.stdout)}|gone"


def test_a_live_runs_claim_is_refused_and_a_lapsed_or_dead_runs_is_taken(
    two: tuple[Ledger, Ledger],
) -> None:
    """Each claim taken anew raises the photo's fencing token by one; its live holder's claim
    taken again keeps it (the token the holder's writes carry)."""
    a, b = two
    first, second = _photos(a, 2)
    a.owner, b.owner = ELSEWHERE, "host-b|boot|2|run"
    a.lease_seconds = 0.5
    assert a.claim(first)
    token = a.fence(first)
    assert token is not None
    assert a.claim(first) and a.fence(first) == token  # taken again by its live holder
    assert not b.claim(first)
    time.sleep(0.6)  # the lease lapses: the run elsewhere stopped renewing it
    assert b.claim(first) and b.fence(first) == token + 1
    a.owner, a.lease_seconds = _dead_owner(), 60.0
    assert a.claim(second)
    token = a.fence(second)
    assert token is not None
    assert b.claim(second)  # its holder's process is gone, however long its lease
    assert b.fence(second) == token + 1


def test_a_charged_photos_claim_ends_with_its_charge(
    location: str, two: tuple[Ledger, Ledger]
) -> None:
    """Nobody need be kept off a charged photo (no intent is taken for it again): its claim
    ends, and the run's renewals and its last release touch only what it still holds."""
    a, b = two
    charged, open_one = _photos(a, 2)
    a.owner, b.owner = ELSEWHERE, "host-b|boot|2|run"
    assert a.claim(charged) and a.claim(open_one)
    a.mark_submitting(charged, "order-1")
    a.mark_submitted(charged, "image-1", None, answered=True)
    assert _holders(location) == {charged: None, open_one: ELSEWHERE}
    a.renew_claims()
    assert _holders(location) == {charged: None, open_one: ELSEWHERE}
    assert not b.claim(open_one)
    a.release_claims()
    assert _holders(location) == {charged: None, open_one: None}


def test_claim_row_takes_the_photo_and_gives_it_as_it_stands(two: tuple[Ledger, Ledger]) -> None:
    """A run's claim and its read of the photo in one call: the row, or None while another
    live run holds it; the fencing token is the claim's, as with ``claim``."""
    a, b = two
    (photo,) = _photos(a, 1)
    a.owner, b.owner = ELSEWHERE, "host-b|boot|2|run"
    a.mark_uploaded(photo, "order-1")
    row = a.claim_row(photo)
    assert row is not None and (row.id, row.order_id) == (photo, "order-1")
    assert a.fence(photo) is not None
    assert b.claim_row(photo) is None
    assert b.fence(photo) is None
