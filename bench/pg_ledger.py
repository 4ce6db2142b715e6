"""The PostgreSQL ledger: the shared window with three processes, and its cost per photo.

Both start a throwaway PostgreSQL server (tests/pg_server.py) with fsync ON, as a real one is.

- pg-window: bench/shared_window.py on one PostgreSQL ledger instead of one SQLite file.
- pg-cost: a ledger of 100,000 photos in each store, in one run: recording them as found (in
  batches of 1,000, as the scanner does), then claim + intent + answer for a sample of
  photos, in groups of 16 writes per `grouped()` as the runner's group commit makes them.
  The sample is 30 blocks of 100 consecutive photos (a run goes through a folder in order)
  spread over the whole ledger, so each change meets 100,000 rows. Each intent counts the
  account's window in its transaction, as a run's do, under a rule the sample never fills
  (500 orders per 10 ms) whose horizon holds every order of the sample (answers within
  125 s, as a run's with the default request timeout): what the count costs as the orders
  of the last minutes grow.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg

from bench import shared_window
from bench.common import Figure
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, WindowRule, open_ledger
from tests.pg_server import PgServer, find_bin

PHOTOS, SAMPLE, GROUP = 100_000, 3_000, 16
OPTIONS = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky",))
WINDOW = WindowRule(orders=500, per_seconds=0.01, answer_within=125.0)


def _server() -> PgServer:
    bin_dir = find_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL here: apt-get install postgresql (initdb, pg_ctl)")
    return PgServer(bin_dir, fsync=True)


def window() -> list[Figure]:
    """Three processes on one PostgreSQL ledger against the window's bound, and 429s."""
    server = _server()
    try:
        figures = shared_window.run(server.new_database(), "PostgreSQL ")
    finally:
        server.stop()
    return [replace(f, command="python -m bench pg-window") for f in figures]


def _photo(n: int) -> FoundPhoto:
    folder = f"/share/f{n // 500}"
    return FoundPhoto(f"{folder}/p{n}.jpg", folder, 1, 1, f"{n:064x}", OPTIONS)


def _cost(ledger: Ledger) -> tuple[float, float, float]:
    """(µs per photo found, µs per claim, µs per intent + answer) at PHOTOS photos."""
    ledger.owner = "bench|boot|1|run"
    # A run renews its claims as it goes; this one does not, so its leases outlast it (an
    # intent is recorded only under a live claim, with the claim's fencing token).
    ledger.lease_seconds = 3600.0
    started = time.perf_counter()
    for start in range(0, PHOTOS, 1000):
        ledger.record_found(
            [
                FoundPhoto(
                    f"/share/f{n // 500}/p{n}.jpg",
                    f"/share/f{n // 500}",
                    1,
                    1,
                    f"{n:064x}",
                    OPTIONS,
                )
                for n in range(start, min(start + 1000, PHOTOS))
            ]
        )
    found = (time.perf_counter() - started) / PHOTOS
    # Runs go through a folder in order: blocks of 100 consecutive photos, spread over it all.
    ids = [
        1 + b * (PHOTOS // (SAMPLE // 100)) + n for b in range(SAMPLE // 100) for n in range(100)
    ]
    started = time.perf_counter()
    for at in range(0, SAMPLE, GROUP):
        with ledger.grouped():
            for photo_id in ids[at : at + GROUP]:
                ledger.claim(photo_id)
    claim = (time.perf_counter() - started) / SAMPLE
    started = time.perf_counter()
    for at in range(0, SAMPLE, GROUP):
        with ledger.grouped():
            for photo_id in ids[at : at + GROUP]:
                ledger.mark_submitting(
                    photo_id, f"order-{photo_id}", window=WINDOW, fence=ledger.fence(photo_id)
                )
        with ledger.grouped():
            for photo_id in ids[at : at + GROUP]:
                ledger.mark_submitted(photo_id, None, None, answered=True)
    order = (time.perf_counter() - started) / SAMPLE
    return found * 1e6, claim * 1e6, order * 1e6


def cost() -> list[Figure]:
    """The same work on SQLite and PostgreSQL at 100,000 photos, in one run."""
    server = _server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = {}
            size_mb = 0.0
            for store, where in (
                ("SQLite", str(Path(tmp) / "bench.ledger.sqlite")),
                ("PostgreSQL", server.new_database()),
            ):
                ledger = open_ledger(where)
                try:
                    results[store] = _cost(ledger)
                finally:
                    ledger.close()
                if store == "PostgreSQL":
                    with psycopg.connect(where) as conn:
                        row = conn.execute("SELECT pg_database_size(current_database())")
                        size_mb = int(str((row.fetchone() or (0,))[0])) / 1e6
    finally:
        server.stop()
    figures = []
    for store, (found, claim, order) in results.items():
        print(
            f"ledger cost, {store}, {PHOTOS:,} photos: found {found:.0f} µs/photo, claim "
            f"{claim:.0f} µs/photo, intent + answer {order:.0f} µs/photo"
        )
        figures.append(
            Figure(
                f"ledger cost per photo at {PHOTOS:,} photos, {store} (fsync on)",
                f"found {found:.0f} µs, claim {claim:.0f} µs, intent + answer {order:.0f} µs "
                f"({SAMPLE:,} orders sampled across the ledger)",
                "a figure",
                None,
                "python -m bench pg-cost",
            )
        )
    print(f"PostgreSQL database size with {PHOTOS:,} photos: {size_mb:.0f} MB")
    figures.append(
        Figure(
            f"PostgreSQL ledger size at {PHOTOS:,} photos ({SAMPLE:,} of them ordered)",
            f"{size_mb:.0f} MB (pg_database_size, rows and indexes)",
            "a figure",
            None,
            "python -m bench pg-cost",
        )
    )
    return figures
