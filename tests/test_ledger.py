"""The ledger's contract on both stores (states, identities and duplicates, runs, a large
folder), then the SQLite file's own: migrations, the run lock."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import LedgerBusy, LedgerError, NotALedger
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, State, open_ledger
from pipeline.ledger.migrations import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]
INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky", "white balance"))
OUTDOOR = PhotoOptions("service-image-enhancement", "space-ie-outdoor", ("sky",))
SHA_A = "a" * 64
SHA_B = "b" * 64


def found(
    path: str,
    sha: str = SHA_A,
    options: PhotoOptions = INDOOR,
    *,
    folder: str = "listing",
    size: int = 100,
    mtime_ns: int = 1,
) -> FoundPhoto:
    return FoundPhoto(path, folder, size, mtime_ns, sha, options)


@pytest.fixture
def ledger(location: str) -> Iterator[Ledger]:
    opened = open_ledger(location)
    yield opened
    opened.close()


def query_elsewhere(location: str, sql: str, *params: object) -> object:
    """The first row of ``sql`` read on another connection, through the store's own driver."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchone()
    other = sqlite3.connect(location)
    try:
        return other.execute(sql, params).fetchone()
    finally:
        other.close()


def hold_lock_in_subprocess(path: Path, command: str) -> subprocess.Popen[str]:
    """Start another process that takes the run lock and keeps it until killed."""
    code = (
        "import sys, time; from pathlib import Path; from pipeline.ledger import open_ledger; "
        "ledger = open_ledger(Path(sys.argv[1])); ledger.acquire_run_lock(sys.argv[2]); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


# -- states ------------------------------------------------------------------------------------


def test_photo_walks_from_pending_to_completed(ledger: Ledger) -> None:
    """Each mark_* returns the row as stored, with the fields that state carries."""
    (row,) = ledger.record_found([found("/p/1.jpg")])
    assert row.state is State.PENDING
    assert row.attempts == 0 and row.order_id is None

    row = ledger.mark_uploaded(row.id, "order-1")
    assert (row.state, row.order_id) == (State.UPLOADED, "order-1")
    row = ledger.mark_submitting(row.id)
    assert (row.state, row.attempts) == (State.SUBMITTING, 1)
    row = ledger.mark_submitted(row.id, "image-1", 40)
    assert (row.state, row.image_id, row.eta) == (State.SUBMITTED, "image-1", 40)
    assert row.submitted_at is not None and row.submitted_at.endswith("+00:00")
    row = ledger.mark_completed(row.id, ["http://r/1.jpg"], ["/out/listing/1.jpg"])
    assert row.state is State.COMPLETED
    assert row.result_urls == ("http://r/1.jpg",)
    assert row.output_paths == ("/out/listing/1.jpg",)
    assert ledger.get(row.id) == row


def test_submitting_is_on_disk_before_mark_submitting_returns(
    ledger: Ledger, location: str
) -> None:
    """Intent before spending: another connection sees 'submitting' at once."""
    (row,) = ledger.record_found([found("/p/1.jpg")])
    ledger.mark_uploaded(row.id, "order-1")
    ledger.mark_submitting(row.id)

    seen = query_elsewhere(location, "SELECT state, attempts FROM photos WHERE id = ?", row.id)
    assert seen == ("submitting", 1)
    second = open_ledger(location)
    try:
        assert second.get(row.id).state is State.SUBMITTING
    finally:
        second.close()


def test_only_an_uploaded_photo_can_be_submitted(ledger: Ledger) -> None:
    """A pending, duplicate or already submitted photo is refused before any money moves."""
    first, copy = ledger.record_found([found("/p/1.jpg"), found("/p/copy.jpg")])
    with pytest.raises(LedgerError, match=r"refusing to submit /p/1\.jpg: it is pending"):
        ledger.mark_submitting(first.id)
    with pytest.raises(LedgerError, match="it is duplicate"):
        ledger.mark_submitting(copy.id)
    ledger.mark_uploaded(first.id, "order-1")
    ledger.mark_submitting(first.id)
    ledger.mark_submitted(first.id, "image-1", 10)
    with pytest.raises(LedgerError, match="it is submitted"):
        ledger.mark_submitting(first.id)
    assert ledger.get(first.id).attempts == 1


def test_mark_pending_drops_a_stale_upload(ledger: Ledger) -> None:
    (row,) = ledger.record_found([found("/p/1.jpg")])
    ledger.mark_uploaded(row.id, "order-1")
    row = ledger.mark_pending(row.id)
    assert (row.state, row.order_id, row.error) == (State.PENDING, None, None)


def test_reset_failed_retries_retryable_ones_and_permanent_only_on_request(
    ledger: Ledger,
) -> None:
    flaky, rejected = ledger.record_found([found("/p/1.jpg"), found("/p/2.jpg", SHA_B)])
    ledger.mark_failed(flaky.id, "rate-limited again and again (429)", retryable=True)
    failed = ledger.mark_failed(rejected.id, "invalid-space", retryable=False)
    assert (failed.state, failed.error, failed.retryable) == (State.FAILED, "invalid-space", False)

    assert ledger.reset_failed(include_permanent=False) == 1
    assert ledger.get(flaky.id).state is State.PENDING
    assert ledger.get(rejected.id).state is State.FAILED
    assert ledger.reset_failed(include_permanent=True) == 1
    assert ledger.get(rejected.id).state is State.PENDING
    assert ledger.get(rejected.id).error is None


def test_a_failure_while_submitting_is_reset_to_unknown_not_pending(
    ledger: Ledger,
) -> None:
    """That order may have been paid: held as unknown, the next run asks the API first."""
    (row,) = ledger.record_found([found("/p/1.jpg")])
    ledger.mark_uploaded(row.id, "order-1")
    ledger.mark_submitting(row.id)
    ledger.mark_failed(row.id, "timed out", retryable=True)

    assert ledger.reset_failed(include_permanent=False) == 1
    row = ledger.get(row.id)
    assert (row.state, row.order_id, row.attempts) == (State.UNKNOWN, "order-1", 1)


def test_broken_file_is_failed_permanently_and_not_cached(ledger: Ledger) -> None:
    row = ledger.record_broken("/p/empty.jpg", "listing", 0, 5, "empty file")
    assert (row.state, row.error, row.retryable) == (State.FAILED, "empty file", False)
    again = ledger.record_broken("/p/empty.jpg", "listing", 0, 5, "empty file")
    assert again.id == row.id
    assert "/p/empty.jpg" not in ledger.cached_hashes()
    # A broken file is checked afresh by the next scan, never sent as pending.
    assert ledger.reset_failed(include_permanent=True) == 0

    (fixed,) = ledger.record_found([found("/p/empty.jpg", size=100, mtime_ns=9)])
    assert fixed.state is State.PENDING
    assert [r.id for r in ledger.photos()] == [fixed.id]


def test_unknown_photo_id_is_a_ledger_error(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no photo with id 42"):
        ledger.get(42)


# -- identities and duplicates -------------------------------------------------------------------


def test_identity_is_content_plus_options() -> None:
    same = PhotoOptions(INDOOR.service, INDOOR.space, ("White Balance", "sky"))
    assert INDOOR.identity(SHA_A) == same.identity(SHA_A)
    assert INDOOR.identity(SHA_A) != OUTDOOR.identity(SHA_A)
    assert INDOOR.identity(SHA_A) != INDOOR.identity(SHA_B)
    assert len(INDOOR.identity(SHA_A)) == 64


def test_copy_with_the_same_options_is_a_duplicate(ledger: Ledger) -> None:
    """In the same batch or a later one, a copy points at the first photo and is never paid."""
    first, same_batch = ledger.record_found([found("/p/1.jpg"), found("/p/copy1.jpg")])
    (later,) = ledger.record_found([found("/other/copy2.jpg", folder="other")])
    assert first.state is State.PENDING
    for copy in (same_batch, later):
        assert (copy.state, copy.duplicate_of) == (State.DUPLICATE, first.id)


def test_copy_with_other_options_is_a_new_photo(ledger: Ledger) -> None:
    first, outdoor = ledger.record_found([found("/p/1.jpg"), found("/q/1.jpg", options=OUTDOOR)])
    assert outdoor.state is State.PENDING
    assert outdoor.duplicate_of is None
    assert outdoor.identity != first.identity


def test_copy_of_a_permanently_failed_photo_stays_duplicate(ledger: Ledger) -> None:
    (first,) = ledger.record_found([found("/p/1.jpg")])
    ledger.mark_failed(first.id, "invalid-image", retryable=False)
    (copy,) = ledger.record_found([found("/p/copy.jpg")])
    assert (copy.state, copy.duplicate_of) == (State.DUPLICATE, first.id)


def test_edited_photo_is_a_new_row_and_the_paid_one_is_kept(ledger: Ledger) -> None:
    (old,) = ledger.record_found([found("/p/1.jpg")])
    ledger.mark_uploaded(old.id, "order-1")
    ledger.mark_submitting(old.id)
    ledger.mark_submitted(old.id, "image-1", 10)

    (new,) = ledger.record_found([found("/p/1.jpg", SHA_B, mtime_ns=2)])
    assert new.id != old.id
    assert new.state is State.PENDING
    assert [r.id for r in ledger.photos()] == [new.id]
    history = ledger.photos(current_only=False)
    assert [(r.id, r.state) for r in history] == [(old.id, State.SUBMITTED), (new.id, new.state)]
    assert ledger.cached_hashes() == {"/p/1.jpg": (100, 2, SHA_B)}

    # Reverting the edit brings back the paid row instead of a second order.
    (back,) = ledger.record_found([found("/p/1.jpg")])
    assert (back.id, back.state) == (old.id, State.SUBMITTED)
    assert [r.id for r in ledger.photos()] == [old.id]


def test_record_found_is_idempotent(ledger: Ledger) -> None:
    photos = [found(f"/p/{n}.jpg", f"{n:064x}") for n in range(5)]
    first = ledger.record_found(photos)
    ledger.mark_uploaded(first[0].id, "order-1")
    again = ledger.record_found(photos)
    assert [r.id for r in again] == [r.id for r in first]
    assert again[0].state is State.UPLOADED
    assert len(ledger.photos(current_only=False)) == 5
    assert ledger.counts()[State.PENDING] == 4


def test_touched_photo_keeps_its_row_and_refreshes_the_hash_cache(ledger: Ledger) -> None:
    (row,) = ledger.record_found([found("/p/1.jpg")])
    (touched,) = ledger.record_found([found("/p/1.jpg", mtime_ns=7)])
    assert touched.id == row.id
    assert ledger.cached_hashes()["/p/1.jpg"] == (100, 7, SHA_A)


def test_counts_cover_current_rows_per_state_and_folder(ledger: Ledger) -> None:
    a, _, c = ledger.record_found(
        [found("/p/1.jpg"), found("/p/2.jpg"), found("/q/3.jpg", SHA_B, folder="garden")]
    )
    ledger.mark_failed(c.id, "invalid-image", retryable=False)
    counts = ledger.counts()
    assert counts[State.PENDING] == 1 and counts[State.DUPLICATE] == 1
    assert counts[State.FAILED] == 1 and counts[State.COMPLETED] == 0
    by_folder = ledger.counts_by_folder()
    assert by_folder["listing"][State.PENDING] == 1
    assert by_folder["listing"][State.DUPLICATE] == 1
    assert by_folder["garden"][State.FAILED] == 1
    assert [r.id for r in ledger.photos([State.PENDING, State.FAILED])] == [a.id, c.id]
    assert ledger.photos([]) == []


def test_runs_are_recorded(ledger: Ledger) -> None:
    assert ledger.last_run() is None
    run_id = ledger.start_run("aihd run listing.yaml")
    ledger.finish_run(run_id, "finished", {"photos": 3, "states": {"submitted": 3}})
    run = ledger.last_run()
    assert run is not None
    assert (run.id, run.command, run.outcome) == (run_id, "aihd run listing.yaml", "finished")
    assert run.ended_at is not None
    assert run.summary == {"photos": 3, "states": {"submitted": 3}}


# -- the SQLite file: opening and migrations -----------------------------------------------------


def test_missing_folders_and_an_empty_file_given_to_init_become_a_ledger(tmp_path: Path) -> None:
    """A new ledger is made where no file exists; an empty file only through `ledger init`
    (issue 20.5: a ledger emptied by a failed copy must not be taken as a new one)."""
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(NotALedger, match="is an empty file, not a ledger"):
        open_ledger(empty)
    assert empty.stat().st_size == 0
    nested = tmp_path / "state" / "deep" / "run.sqlite"
    for path, init in ((empty, True), (nested, False)):
        opened = open_ledger(path, init=init)
        opened.close()
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()
    reopened = open_ledger(nested)  # a second open does not migrate again
    reopened.close()


def test_ledger_from_a_newer_aihd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    open_ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    where = re.escape(str(path))
    with pytest.raises(LedgerError, match=rf"ledger {where} has schema version 99.*upgrade aihd"):
        open_ledger(path)


def test_a_file_that_is_not_sqlite_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 10)
    where = re.escape(str(path))
    with pytest.raises(LedgerError, match=rf"cannot open ledger {where}: .*not a database"):
        open_ledger(path)
    assert path.read_text().startswith("these are my notes")


def test_another_tools_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.close()
    where = re.escape(str(path))
    with pytest.raises(LedgerError, match=rf"{where}: it is an SQLite file of another tool"):
        open_ledger(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    conn.close()


def test_a_folder_as_ledger_is_refused(tmp_path: Path) -> None:
    where = re.escape(str(tmp_path))
    with pytest.raises(LedgerError, match=rf"cannot open ledger {where}: it is a folder"):
        open_ledger(tmp_path)


# -- the run lock --------------------------------------------------------------------------------


def test_second_holder_in_the_same_process_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    first, second = open_ledger(path), open_ledger(path)
    try:
        first.acquire_run_lock("aihd run a.yaml")
        where = re.escape(str(path))
        with pytest.raises(LedgerBusy, match=rf"ledger {where} is in use by pid {os.getpid()}"):
            second.acquire_run_lock("aihd run b.yaml")
        first.release_run_lock()
        second.acquire_run_lock("aihd run b.yaml")
    finally:
        first.close()
        second.close()


def test_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path: Path) -> None:
    """LedgerBusy names the holder; SIGKILL of the holder frees the lock; reads go on meanwhile."""
    path = tmp_path / "run.sqlite"
    ledger = open_ledger(path)
    try:
        (row,) = ledger.record_found([found("/p/1.jpg")])
        holder = hold_lock_in_subprocess(path, "aihd run listing.yaml")
        try:
            with pytest.raises(LedgerBusy) as busy:
                ledger.acquire_run_lock("aihd status")
            message = str(busy.value)
            assert f"pid {holder.pid} on host" in message
            assert "aihd run listing.yaml" in message and "wait for it" in message
            assert busy.value.exit_code == 5
            assert ledger.photos() == [row]  # status and export work during a run
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            assert holder.stdout is not None
            holder.stdout.close()
        assert (tmp_path / "run.sqlite.lock").exists()  # stale file, but no lock on it
        ledger.acquire_run_lock("aihd run listing.yaml")
        ledger.mark_uploaded(row.id, "order-1")
    finally:
        ledger.close()


# -- speed ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_record_found_handles_large_folders_in_one_call(ledger: Ledger) -> None:
    """20,000 photos in one call, then again unchanged: same rows, nothing new.

    How fast this is gets measured in bench/ (client cost), never asserted here.
    """
    photos = [found(f"/p/{n:06}.jpg", f"{n:064x}") for n in range(20_000)]
    rows = ledger.record_found(photos)
    assert len(rows) == 20_000 and rows[-1].state is State.PENDING
    again = ledger.record_found(photos)
    assert [r.id for r in again] == [r.id for r in rows]
    assert len(ledger.cached_hashes()) == 20_000
