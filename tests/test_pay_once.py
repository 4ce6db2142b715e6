"""Never pay twice, on evidence (issue 20, items 1 and 2).

1. An order POST charged, then answered 500 with the API's own error body, while the order's
   details lag the charge: the photo is posted again only after its details said "not
   received" for the whole settle time, so it is charged once across nights, and the ledger
   and every "orders spent" say what may have been spent.
2. A run paused (SIGSTOP) past its lease while another run takes its photos over sends
   nothing stale when it wakes (SIGCONT): the fencing of claims, on SQLite and PostgreSQL.

Every test drives the real `aihd` command against a local emulator, with real signals, and
asserts what a user sees: the emulator's charges, ledger rows, exit codes and summaries.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from pipeline import eventloop
from pipeline.errors import ClaimLost
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, PhotoRow, State, open_ledger
from pipeline.ledger.migrations import APPLICATION_ID, _unknown_state_and_claim_fences
from pipeline.ledger.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from pipeline.ledger.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from pipeline.ledger.postgres_schema import (
    _unknown_state_and_claim_fences as _pg_unknown_state_and_claim_fences,
)
from pipeline.ledger.stores import is_url
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import FAST, aihd, aihd_env, ledger_rows, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]
LAG = 6.0  # the details show a charge this long after it: longer than any quick settle
SETTLE = ["--settle", "10"]  # longer than the lag, as the settle time must be
LEASE = {"AIHD_CLAIM_LEASE_SECONDS": "2"}  # claims of a paused run lapse in 2 s


def _charges(sandbox: Sandbox) -> list[int]:
    return sorted(sandbox.stats().charges.values())


def _run(manifest: Path, sandbox: Sandbox, *extra: str, timeout: float = 120) -> dict[str, object]:
    done = aihd(["run", str(manifest), *FAST, "--json", *extra], sandbox, timeout=timeout)
    return _summary(done.stdout, done.returncode, done.stderr)


def _summary(stdout: str, code: int | None, stderr: str) -> dict[str, object]:
    summary: dict[str, object] = json.loads(stdout) if stdout.strip() else {}
    summary["_exit"], summary["_stderr"] = code, stderr
    return summary


def _json(args: list[str], sandbox: Sandbox) -> dict[str, object]:
    done = aihd(args, sandbox)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _charged(sandbox: Sandbox) -> int:
    stats = sandbox.stats()
    return stats.orders_charged + stats.processes_charged


# -- item 1: charged, then a 500 with the API's body, while the details lag --------------------


@pytest.mark.slow
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_a_charge_answered_500_while_its_details_lag_is_charged_once_over_two_nights(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path, api: str
) -> None:
    """Every order POST is charged and answered 500 {"error", "key"}; the details show the
    charge only 6 s later. The photos are not posted again: their details are read until
    they show the charge. One charge each, that night and the next."""
    sandbox = make_sandbox(faults=Faults(error_after_charge_rate=1.0, details_lag_seconds=LAG))
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, api=api)

    night = _run(manifest, sandbox, *SETTLE)
    assert night["_exit"] == 0, night["_stderr"]
    assert (night["orders_spent"], night["orders_posted"], night["outcomes_unknown"]) == (3, 3, 3)
    assert _charges(sandbox) == [1, 1, 1]
    assert all(r.state is State.SUBMITTED and r.charged for r in ledger_rows(manifest))

    again = _run(manifest, sandbox, *SETTLE)
    assert (again["_exit"], again["orders_spent"], again["orders_posted"]) == (0, 0, 0)
    assert _charges(sandbox) == [1, 1, 1]
    status = _json(["status", str(manifest), "--json"], sandbox)
    assert (status["orders_spent"], status["orders_charged"], status["orders_unknown"]) == (3, 3, 0)
    plan = _json(["plan", str(manifest), "--json"], sandbox)
    assert (plan["orders_spent"], plan["paid"], plan["orders"]) == (3, 3, 0)


@pytest.mark.slow
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_a_run_stopped_while_its_charges_lag_leaves_them_unknown_and_counted_as_spent(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path, api: str
) -> None:
    """Stopped (SIGINT) while the lagging details still read "not received": the photos are
    held as unknown, never "nothing charged", and every "orders spent" counts them. The next
    night reads them again, finds them charged, and posts nothing."""
    sandbox = make_sandbox(faults=Faults(error_after_charge_rate=1.0, details_lag_seconds=LAG))
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, api=api)

    run = spawn_aihd(["run", str(manifest), *FAST, *SETTLE, "--json"], sandbox)
    _wait_until(
        lambda: [r.state for r in ledger_rows(manifest)] == [State.UNKNOWN] * 3,
        "three unknown photos",
    )
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    night = _summary(out, run.returncode, err)
    assert night["_exit"] == 130, err
    assert (night["orders_spent"], night["unconfirmed"], night["settling"]) == (3, 3, 3)
    assert _charges(sandbox) == [1, 1, 1]
    rows = ledger_rows(manifest)
    assert all(r.state is State.UNKNOWN and not r.charged and r.order_id for r in rows)
    assert all("may have been charged" in (r.error or "") for r in rows)
    status = _json(["status", str(manifest), "--json"], sandbox)
    assert (status["orders_spent"], status["orders_charged"], status["orders_unknown"]) == (3, 0, 3)
    assert sorted(u["path"] for u in status["unknown"]) == sorted(r.path for r in rows)  # type: ignore[attr-defined]
    listed = aihd(["status", str(manifest), "--failed"], sandbox).stdout
    assert all(f"unknown: {r.path}: " in listed for r in rows)
    plan = _json(["plan", str(manifest), "--json"], sandbox)
    assert (plan["orders_spent"], plan["unknown"], plan["paid"], plan["orders"]) == (3, 3, 0, 0)
    # --retry-failed resets failures, never an unknown photo.
    again = _run(manifest, sandbox, *SETTLE, "--retry-failed")
    assert again["_exit"] == 0, again["_stderr"]
    assert (again["orders_spent"], again["orders_posted"]) == (3, 0)  # found charged
    assert _charges(sandbox) == [1, 1, 1]
    assert all(r.state is State.SUBMITTED and r.charged for r in ledger_rows(manifest))


@pytest.mark.slow
def test_a_500_before_any_charge_is_posted_again_only_after_the_whole_settle_time(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The first order POST is answered 500 with the API's body and not charged: it is
    posted again, once its details said "not received" for the whole settle time. (The
    settle time counts from that answer, which came after the POST reached the sandbox: the
    sandbox's own receipt times of the two POSTs are at least the settle time apart.)"""
    sandbox = make_sandbox(faults=Faults(order_error_rate=1.0))
    photo_factory(tmp_path / "inside", "a.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    run = spawn_aihd(["run", str(manifest), *FAST, "--settle", "6", "--json"], sandbox)
    _wait_until(lambda: sandbox.stats().order_posts == 1, "the first order POST")
    _wait_until(lambda: [r.state for r in ledger_rows(manifest)] == [State.UNKNOWN], "its 500")
    sandbox.set_faults(Faults())  # the next POST goes through
    _wait_until(lambda: sandbox.stats().order_posts == 2, "the second order POST")
    first, second = sandbox.stats().post_times
    assert second - first >= 6.0  # never sooner than the settle time
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert (json.loads(out)["orders_spent"], _charges(sandbox)) == (1, [1])


# -- item 2: a run paused past its lease while another takes over --------------------------------


def _stop(run: subprocess.Popen[str], ledger: str) -> None:
    """SIGSTOP the run at a moment it is inside no ledger transaction (one it held would
    hold every other run of the ledger up: a limit of a shared ledger, not this test's)."""
    for _ in range(200):
        run.send_signal(signal.SIGSTOP)
        if not _in_a_transaction(ledger):
            return
        run.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the run was inside a ledger transaction at every try")


def _in_a_transaction(ledger: str) -> bool:
    if is_url(ledger):
        with psycopg.connect(ledger, autocommit=True) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid != pg_backend_pid() AND xact_start IS NOT NULL"
            ).fetchone()
        return bool(found and found[0])
    lite = sqlite3.connect(ledger, timeout=0, isolation_level=None)
    try:
        lite.execute("BEGIN IMMEDIATE")
        lite.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        lite.close()


def _resume(run: subprocess.Popen[str]) -> None:
    run.send_signal(signal.SIGCONT)


@pytest.fixture
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The account ledger both runs share: a SQLite file, or a PostgreSQL database."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "account.ledger.sqlite")


def _rows(url: str) -> list[PhotoRow]:
    opened = open_ledger(url)
    try:
        return opened.photos(current_only=False)
    finally:
        opened.close()


@pytest.mark.slow
@pytest.mark.parametrize("ledger_url", ["sqlite", "postgres"], indirect=True)
def test_a_v3_run_paused_past_its_lease_sends_nothing_stale_when_it_wakes(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path,
    ledger_url: str,
) -> None:  # fmt: skip
    """A v3 run whose processes fill its slots has photos waiting for a process slot; it is
    SIGSTOPped past its lease, a second run claims those photos and orders them, then the
    first wakes (SIGCONT): it sends nothing for them. Each photo charged once, no 429."""
    # Processes run 9 s: the first three hold the run's three process slots that long.
    sandbox = make_sandbox(orders_per_window=3, window_seconds=2, eta_seconds=30, time_scale=0.3)
    for n in range(8):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, orders=3, per_seconds=2, concurrency=8,
        api="v3", ledger=ledger_url,
    )  # fmt: skip
    first = spawn_aihd(["run", str(manifest), *FAST, "--json"], sandbox, env=LEASE)
    try:
        # Three processes started; once the window frees, three more orders are made and
        # their photos wait for a process slot (the first three still run for seconds).
        _wait_until(lambda: sandbox.stats().process_posts == 3, "three process POSTs")
        _wait_until(lambda: sandbox.stats().v3_orders >= 6, "three more orders")
        time.sleep(0.5)
        assert sandbox.stats().process_posts == 3
        _stop(first, ledger_url)
        time.sleep(3.0)  # its claims lapse (a 2 s lease)
        second = _run(manifest, sandbox, "--concurrency", "8", timeout=120)
    finally:
        _resume(first)
    _, err = first.communicate(timeout=120)
    assert second["_exit"] == 0, second["_stderr"]
    assert first.returncode == 0, err
    stats = sandbox.stats()
    assert _charges(sandbox) == [1] * 8
    assert (stats.process_posts, stats.rate_limited) == (8, 0)
    assert "nothing was sent for it" in err  # it woke, found its claims lost, and left them
    rows = _rows(ledger_url)
    assert len(rows) == 8 and all(r.state is State.SUBMITTED and r.charged for r in rows)


@pytest.mark.slow
def test_a_v1_run_paused_past_its_lease_while_waiting_for_a_slot_sends_nothing_stale(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """v1: the run has spent its window and waits for a slot with photos uploaded; SIGSTOPped
    past its lease, another run orders them; woken, it posts nothing more. No 429."""
    sandbox = make_sandbox(orders_per_window=2, window_seconds=4)
    for n in range(6):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    ledger = str(tmp_path / "account.ledger.sqlite")
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, orders=2, per_seconds=4, ledger=ledger
    )
    first = spawn_aihd(["run", str(manifest), *FAST, "--json"], sandbox, env=LEASE)
    try:
        _wait_until(lambda: sandbox.stats().order_posts == 2, "two order POSTs")
        _wait_until(lambda: sandbox.stats().uploads >= 3, "a photo uploaded for the next slot")
        _stop(first, ledger)  # within the 4 s window: its next POST is seconds away
        assert sandbox.stats().order_posts == 2
        time.sleep(3.0)
        second = _run(manifest, sandbox, timeout=120)
    finally:
        _resume(first)
    _, err = first.communicate(timeout=120)
    assert second["_exit"] == 0, second["_stderr"]
    assert first.returncode == 0, err
    stats = sandbox.stats()
    assert _charges(sandbox) == [1] * 6
    assert (stats.order_posts, stats.rate_limited) == (6, 0)
    rows = _rows(ledger)
    assert len(rows) == 6 and all(r.state is State.SUBMITTED for r in rows)


@pytest.mark.slow
def test_an_intent_waiting_for_a_process_slot_is_never_counted_as_answered(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A v3 run's photos wait for a process slot (its processes run 9 s) longer than a request
    may take (2 x 1 s + 5 s) and a window (2 s): SIGSTOPped there, a second run of the
    account spends the window, then the first wakes and sends. Had their intents been on
    record while they waited, the window would have counted them as answered long before
    they were sent, and let both runs' POSTs into one window: 429s. No 429, one charge each."""
    sandbox = make_sandbox(orders_per_window=3, window_seconds=2, eta_seconds=30, time_scale=0.3)
    ledger = str(tmp_path / "account.ledger.sqlite")
    manifests = []
    for name, count in (("a", 6), ("b", 3)):
        for n in range(count):
            photo_factory(tmp_path / name / "inside", f"{name}{n}.jpg")
        manifests.append(
            write_manifest(
                tmp_path / name, {"inside": ("indoor", [])}, orders=3, per_seconds=2,
                concurrency=6, api="v3", ledger=ledger,
            )
        )  # fmt: skip
    args = ["--no-progress", "--request-timeout", "1", "--settle", "0.2", "--json"]
    first = spawn_aihd(["run", str(manifests[0]), *args], sandbox)
    try:
        _wait_until(lambda: sandbox.stats().process_posts == 3, "three process POSTs")
        _wait_until(lambda: sandbox.stats().v3_orders >= 6, "three photos waiting for a slot")
        time.sleep(0.5)
        _stop(first, ledger)
        time.sleep(9.0)  # past 2 x 1 s + 5 s and the 2 s window since they began to wait
        second = spawn_aihd(["run", str(manifests[1]), *args], sandbox)
        _wait_until(lambda: sandbox.stats().process_posts == 6, "the second run's POSTs")
    finally:
        _resume(first)  # its processes are done: it sends within a second of the second's
    results = [run.communicate(timeout=120) for run in (first, second)]
    assert [run.returncode for run in (first, second)] == [0, 0], [e for _, e in results]
    assert sandbox.stats().rate_limited == 0
    assert _charges(sandbox) == [1] * 9


# -- a sender paused between its intent and its POST ---------------------------------------------

_PAUSED_AFTER_INTENT = """
import sys, time
from pipeline.ledger.sqlite import SqliteLedger
intent = SqliteLedger.mark_submitting
pause = float(sys.argv[1])
paused = []
def pause_once(self, *args, **kwargs):
    row = intent(self, *args, **kwargs)
    if not paused:  # the process stops right after its first intent is on disk
        paused.append(row.id)
        time.sleep(pause)
    return row
SqliteLedger.mark_submitting = pause_once
from pipeline.cli.main import main
sys.argv = ["aihd", *sys.argv[2:]]
main()
"""


def test_an_intent_no_longer_fresh_when_its_turn_comes_is_never_sent(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The process stalls for 1.5 s right after its intent's commit (longer than the intent
    may wait to be sent: 0.25 s at --settle 1): that POST is never sent, the window forgets
    it, and the photo is settled and ordered once."""
    photo_factory(tmp_path / "inside", "a.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    done = subprocess.run(
        [sys.executable, "-c", _PAUSED_AFTER_INTENT, "1.5", "run", str(manifest),
         "--no-progress", "--request-timeout", "3", "--settle", "1", "--json"],
        env=aihd_env(sandbox), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (sandbox.stats().order_posts, _charges(sandbox)) == (1, [1])
    summary = json.loads(done.stdout)
    assert (summary["orders_posted"], summary["orders_spent"]) == (1, 1)
    conn = sqlite3.connect(manifest.with_name("photos.ledger.sqlite"))
    try:
        outcomes = [o for (o,) in conn.execute("SELECT outcome FROM order_posts ORDER BY id")]
    finally:
        conn.close()
    assert outcomes == ["unsent", "accepted"]


# -- the ledger's fencing, on both stores ---------------------------------------------------------

INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())


@pytest.fixture(params=["sqlite", "postgres"])
def two_runs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    """Two runs' handles on one ledger (claims on another host: only a lease ends them)."""
    if request.param == "postgres":
        location = request.getfixturevalue("pg_url")
    else:
        location = str(tmp_path / "ledger.sqlite")
    a, b = open_ledger(location), open_ledger(location)
    a.owner, b.owner = "host-a|boot|1|run", "host-b|boot|2|run"
    a.lease_seconds = b.lease_seconds = 1.0
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_takeover_fences_the_old_claim_out_of_every_write_and_the_intent(
    two_runs: tuple[Ledger, Ledger],
) -> None:
    """A's claim lapses and B takes the photo: A's intent, upload and failure are refused
    (ClaimLost), even once A has claimed it again: its old token is stale."""
    a, b = two_runs
    (row,) = a.record_found([FoundPhoto("/p/a.jpg", "/p", 1, 1, "a" * 64, INDOOR)])
    assert a.claim(row.id)
    old = a.fence(row.id)
    a.mark_uploaded(row.id, "order-1", fence=old)
    time.sleep(1.2)  # A was paused: its lease lapsed
    a.renew_claims()  # waking, it does not get a lapsed claim back
    assert b.claim(row.id)
    assert b.fence(row.id) == (old or 0) + 1
    stale: list[Callable[[], object]] = [
        lambda: a.mark_submitting(row.id, fence=old),
        lambda: a.mark_submitting(row.id),
        lambda: a.mark_uploaded(row.id, "order-2", fence=old),
        lambda: a.mark_pending(row.id, fence=old),
        lambda: a.mark_failed(row.id, "stale", retryable=True, fence=old),
    ]
    for write in stale:
        with pytest.raises(ClaimLost):
            write()
    assert b.mark_submitting(row.id, fence=b.fence(row.id)).state is State.SUBMITTING
    b.release_claims()
    assert a.claim(row.id)  # A claims it anew: a new token, and the old one stays refused
    with pytest.raises(ClaimLost):
        a.mark_not_received(row.id, None, fence=old)
    got = a.get(row.id)
    assert (got.state, got.order_id) == (State.SUBMITTING, "order-1")


# -- ledgers of an older aihd ---------------------------------------------------------------------

OLD_NOTHING_CHARGED = (
    "the API did not take the order after 5 tries; nothing was charged; the next run tries again"
)


def _older_copy(current: Path, upto: int) -> None:
    """Rewrite the ledger at ``current`` as an older aihd's: schema version ``upto`` (its own
    migrations, never edited), holding the same photos and order POSTs."""
    older = current.with_name("older.sqlite")
    conn = sqlite3.connect(older)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for version, migration in enumerate(SQLITE_MIGRATIONS[:upto], start=1):
        migration(conn)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.execute("ATTACH DATABASE ? AS now", (str(current),))
    tables = [name for (name,) in conn.execute("SELECT name FROM main.sqlite_master "
                                               "WHERE type = 'table'")]  # fmt: skip
    for table in tables:
        columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM now.{table}")
    conn.commit()
    conn.execute("DETACH DATABASE now")
    conn.close()
    for leftover in (current, Path(f"{current}-wal"), Path(f"{current}-shm")):
        leftover.unlink(missing_ok=True)
    older.rename(current)


def test_an_older_ledgers_possibly_charged_failures_are_unknown_and_settled_by_evidence(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """An older aihd left two photos failed: one as "did not take the order after 5 tries;
    nothing was charged" (its 5xx had followed a charge), one whose order's outcome it could
    not confirm (never charged). Migrated, both are unknown; even with --retry-failed the
    next run reads their orders: the first is found charged, the second is ordered once."""
    sandbox = make_sandbox(faults=Faults(order_reset_rate=1.0))  # POSTs reset, uncharged
    folder = tmp_path / "inside"
    photo_factory(folder, "charged.jpg")
    photo_factory(folder, "idle.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    stopped = aihd(["run", str(manifest), "--no-progress", "--settle", "60", "--max-duration",
                    "2s", "--request-timeout", "3"], sandbox)  # fmt: skip
    assert stopped.returncode == 4, stopped.stderr
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert {r.state for r in rows.values()} == {State.UNKNOWN}
    # What the older aihd never knew: its POST of the first photo had been charged.
    sandbox.set_faults(Faults(error_after_charge_rate=1.0))
    spec: dict[str, object] = {
        "order_id": rows["charged.jpg"].order_id,
        "space_name": "space-ie-indoor",
        "selected_widgets": [],
    }
    assert _post_order(sandbox, spec) == 500
    sandbox.set_faults(Faults())
    assert _charges(sandbox) == [1]
    ledger = manifest.with_name("photos.ledger.sqlite")
    _older_copy(ledger, SQLITE_MIGRATIONS.index(_unknown_state_and_claim_fences))
    with sqlite3.connect(ledger) as conn:
        conn.execute(
            "UPDATE photos SET state = 'failed', failed_from = 'uploaded', retryable = 1, "
            "error = ? WHERE path LIKE '%charged.jpg'",
            (OLD_NOTHING_CHARGED,),
        )
        conn.execute(
            "UPDATE photos SET state = 'failed', failed_from = 'submitting', retryable = 1, "
            "error = 'outcome not confirmed yet: GET order: HTTP 503' WHERE path LIKE '%idle.jpg'"
        )
    conn.close()
    migrated = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert {r.state for r in migrated.values()} == {State.UNKNOWN}
    assert "may have been charged" in (migrated["charged.jpg"].error or "")

    done = _run(manifest, sandbox, "--retry-failed", "--settle", "0.5")
    assert done["_exit"] == 0, done["_stderr"]
    assert _charges(sandbox) == [1, 1]
    assert sandbox.stats().uploads == 2  # neither was uploaded again
    after = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert all(r.state is State.SUBMITTED and r.charged for r in after.values())
    assert after["charged.jpg"].order_id == rows["charged.jpg"].order_id


def _post_order(sandbox: Sandbox, body: dict[str, object]) -> int:
    """POST /v1/order as another client would; its status."""

    async def post() -> int:
        headers = {"x-api-key": sandbox.api_key}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(sandbox.url + "/v1/order", json=body) as response,
        ):
            return response.status

    return eventloop.run(post())


def test_an_older_postgres_ledgers_possibly_charged_failures_become_unknown(pg_url: str) -> None:
    """As on SQLite: the PostgreSQL ledger's migration holds them as unknown."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        upto = PG_MIGRATIONS.index(_pg_unknown_state_and_claim_fences)
        conn.execute("CREATE TABLE aihd_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO aihd_schema VALUES (%s)", (upto,))
        for migration in PG_MIGRATIONS[:upto]:
            migration(conn)
        for n, (failed_from, error) in enumerate(
            [("uploaded", OLD_NOTHING_CHARGED), ("submitting", "outcome unknown: ..."),
             ("uploaded", "cannot read: gone")]
        ):  # fmt: skip
            conn.execute(
                "INSERT INTO photos (id, path, folder, sha256, size, mtime_ns, service, space, "
                "enhancements, identity, state, order_id, error, retryable, failed_from, "
                "created_at, updated_at) VALUES (%s, %s, '/m', %s, 1, 1, 's', 'x', '[]', %s, "
                "'failed', %s, %s, 1, %s, 'then', 'then')",
                (n + 1, f"/m/{n}.jpg", f"{n}" * 64, f"id{n}", f"order-{n}", error, failed_from),
            )
    opened = open_ledger(pg_url)
    try:
        states = [(r.state, r.retryable) for r in opened.photos(current_only=False)]
    finally:
        opened.close()
    assert states == [(State.UNKNOWN, False), (State.UNKNOWN, False), (State.FAILED, True)]


def test_an_imported_order_whose_outcome_is_unknown_is_held_not_ordered_again(
    tmp_path: Path,
) -> None:
    """An older per-manifest ledger left a photo's order POST unsettled; the account's ledger
    knows the photo only as pending. Imported, it holds that order as unknown."""
    photo = FoundPhoto("/p/a.jpg", "/p", 1, 1, "a" * 64, INDOOR)
    older = open_ledger(tmp_path / "older.sqlite")
    try:
        (row,) = older.record_found([photo])
        older.mark_uploaded(row.id, "order-1")
        older.mark_submitting(row.id)  # killed before its answer
    finally:
        older.close()
    account = open_ledger(tmp_path / "account.sqlite")
    try:
        (ours,) = account.record_found([photo])
        assert account.import_ledger(tmp_path / "older.sqlite") is not None
        held = account.get(ours.id)
    finally:
        account.close()
    assert (held.state, held.order_id, held.charged) == (State.UNKNOWN, "order-1", False)
