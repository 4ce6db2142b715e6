"""The account ledger in PostgreSQL, on a real server the suite starts (tests/pg_server.py):
the same states and commands as SQLite, claims and the window across processes, faults."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.errors import LedgerError, LedgerUnreachable, SubmitRefused
from pipeline.ledger import (
    FoundPhoto,
    Ledger,
    PhotoOptions,
    PhotoRow,
    State,
    WindowFull,
    WindowRule,
    open_ledger,
)
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.ledger.postgres import PostgresLedger
from pipeline.ledger.postgres_schema import LOCK_WINDOW, SCHEMA_VERSION
from pipeline.ledger.sqlite import SqliteLedger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]
INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky",))


def found(path: str, sha: str = "a" * 64, folder: str = "/m") -> FoundPhoto:
    return FoundPhoto(path, folder, 100, 1, sha, INDOOR)


@pytest.fixture
def ledger(pg_url: str) -> Iterator[PostgresLedger]:
    opened = open_ledger(pg_url)
    assert isinstance(opened, PostgresLedger)
    yield opened
    opened.close()


def rows_of(url: str) -> list[PhotoRow]:
    opened = open_ledger(url)
    try:
        return opened.photos(current_only=False)
    finally:
        opened.close()


def sql(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def database(url: str) -> tuple[str, str]:
    """(the database's name, a URL of the server's ``postgres`` database)."""
    name = url.split("?")[0].rsplit("/", 1)[1]
    return name, url.replace(f"/{name}?", "/postgres?", 1)


def shut_out(url: str, *, keep: int = 0) -> None:
    """The database refuses new connections and drops aihd's (all but the backend ``keep``,
    a test's own connection, whose locks stay held): it is away."""
    name, admin = database(url)
    sql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
        "AND pid != pg_backend_pid() AND pid != %s", (name, keep))  # fmt: skip


def let_in(url: str) -> None:
    name, admin = database(url)
    sql(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


# -- the store ---------------------------------------------------------------------------------


def test_a_photo_walks_its_states_and_a_copy_elsewhere_is_one_photo(
    ledger: PostgresLedger,
) -> None:
    """Same states as SQLite; the same content under another machine's path is a duplicate."""
    first, copy = ledger.record_found([found("/m1/a.jpg", folder="/m1")])[0], None
    (copy,) = ledger.record_found([found("/m2/a.jpg", folder="/m2")])
    assert (copy.state, copy.duplicate_of) == (State.DUPLICATE, first.id)
    ledger.mark_uploaded(first.id, "order-1")
    assert ledger.mark_submitting(first.id).state is State.SUBMITTING
    with pytest.raises(SubmitRefused, match="it is submitting, not uploaded"):
        ledger.mark_submitting(first.id)
    row = ledger.mark_submitted(first.id, "img-1", 30, answered=True)
    assert (row.state, row.charged, row.image_id) == (State.SUBMITTED, True, "img-1")
    with pytest.raises(LedgerError, match="charged already"):
        ledger.mark_pending(first.id)
    assert ledger.charged_counts() == (1, 0)
    assert ledger.counts(["/m2"])[State.DUPLICATE] == 1
    assert ledger.mark_completed(first.id, ["u"], ["/out/a.jpg"]).output_paths == ("/out/a.jpg",)


def test_schema_is_versioned_and_another_tools_database_is_refused(pg_url: str) -> None:
    """aihd_schema holds the version; a newer one, or foreign tables, are refused unaltered."""
    open_ledger(pg_url).close()
    assert sql(pg_url, "SELECT version FROM aihd_schema") == [(SCHEMA_VERSION,)]
    sql(pg_url, "UPDATE aihd_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(LedgerError, match="newer than this aihd knows"):
        open_ledger(pg_url)
    sql(pg_url, "DROP TABLE aihd_schema")
    with pytest.raises(LedgerError, match="tables of another tool"):
        open_ledger(pg_url)


def test_claims_come_in_skip_locked_batches_and_lapse_with_their_lease(pg_url: str) -> None:
    """One run's batch is skipped by another; once its lease lapses, the other takes over."""
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    try:
        rows = a.record_found([found(f"/m/{n}.jpg", sha=f"{n:064d}") for n in range(5)])
        a.owner, b.owner = "host-a|boot|1|run", "host-b|boot|2|run"
        a.lease_seconds = 0.5
        assert a.claim(rows[0].id)
        holders = sql(pg_url, "SELECT count(*) FROM photos WHERE claimed_by = 'host-a|boot|1|run'")
        assert holders == [(5,)]  # the photo and the next open ones of its folder
        assert not b.claim(rows[3].id)
        time.sleep(0.6)  # the lease lapses on the database's clock
        assert b.claim(rows[3].id)
        a.mark_uploaded(rows[3].id, "order-3")
        with pytest.raises(SubmitRefused, match="holds it now"):
            a.mark_submitting(rows[3].id)
    finally:
        a.close()
        b.close()


def test_a_claims_batch_takes_only_photos_of_its_own_directory(pg_url: str) -> None:
    """Another manifest's folder of the same name (another listing, or a subfolder) is left
    to the run that goes through it: claiming one photo never holds photos it will not visit."""
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    try:
        mine = a.record_found([found(f"/a/own/{n}.jpg", sha=f"1{n:063d}", folder="own")
                               for n in range(3)])  # fmt: skip
        theirs = a.record_found(
            [found(f"/b/own/{n}.jpg", sha=f"2{n:063d}", folder="own") for n in range(3)]
            + [found("/a/own/sub/x.jpg", sha="3" * 64, folder="own")]
        )
        a.owner, b.owner = "host-a|boot|1|run", "host-b|boot|2|run"
        assert a.claim(mine[0].id)
        held = sql(pg_url, "SELECT path FROM photos WHERE claimed_by = 'host-a|boot|1|run' "
                   "ORDER BY path")  # fmt: skip
        assert held == [(f"/a/own/{n}.jpg",) for n in range(3)]
        assert all(b.claim(row.id) for row in theirs)
    finally:
        a.close()
        b.close()


def test_the_window_refuses_a_slot_when_the_account_is_full(ledger: PostgresLedger) -> None:
    """The intent's own transaction counts the window, on the database's clock."""
    rows = ledger.record_found([found(f"/m/{n}.jpg", sha=f"{n:064d}") for n in range(3)])
    rule = WindowRule(orders=2, per_seconds=60, answer_within=5)
    for row in rows[:2]:
        ledger.mark_submitting(row.id, f"order-{row.id}", window=rule)
        ledger.mark_submitted(row.id, None, None, answered=True)
    with pytest.raises(WindowFull):
        ledger.mark_submitting(rows[2].id, "order-3", window=rule)
    assert ledger.get(rows[2].id).state is State.PENDING
    assert 59 < ledger.window_wait(rule) <= 60
    assert len(ledger.recent_posts(60)) == 2


def test_a_database_that_stays_away_raises_ledger_unreachable(pg_url: str) -> None:
    """Connections refused past the retry time: LedgerUnreachable (exit 7)."""
    opened = PostgresLedger(pg_url, retry_seconds=0.5)
    try:
        shut_out(pg_url)
        with pytest.raises(LedgerUnreachable, match="unreachable") as caught:
            opened.counts()
        assert caught.value.exit_code == 7
        let_in(pg_url)
        assert opened.counts()[State.PENDING] == 0  # back: the same handle works again
    finally:
        opened.close()


# -- the commands ------------------------------------------------------------------------------


def pg_manifest(root: Path, url: str, **kw: object) -> Path:
    """A manifest whose ledger is the PostgreSQL database at ``url``."""
    return write_manifest(root, {"photos": ("indoor", [])}, ledger=url, **kw)  # type: ignore[arg-type]


def test_a_run_on_a_postgresql_ledger_pays_once_and_the_commands_read_it(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """`ledger: postgresql://...` in the manifest: run, re-run, status and export as with SQLite."""
    for n in range(4):
        photo_factory(tmp_path / "photos", f"p{n}.jpg")
    manifest = pg_manifest(tmp_path, pg_url)
    first = aihd(["run", str(manifest), *FAST], sandbox)
    assert first.returncode == 0, first.stderr
    again = aihd(["run", str(manifest), *FAST], sandbox)
    assert again.returncode == 0, again.stderr
    assert sorted(sandbox.stats().charges.values()) == [1] * 4
    assert {r.state for r in rows_of(pg_url)} == {State.SUBMITTED}
    status = aihd(["status", pg_url], None)
    assert status.returncode == 0 and "submitted" in status.stdout, status.stderr
    export = aihd(["export", pg_url, "--format", "csv"], None)
    assert export.returncode == 0 and export.stdout.count("p") >= 4, export.stderr
    via_env = aihd(["status", str(manifest)], None, env={"AIHD_LEDGER": pg_url})
    assert via_env.returncode == 0, via_env.stderr


def test_ledger_import_copies_a_sqlite_ledger_into_postgresql_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """`aihd ledger import FILE --into URL`: charged photos are never ordered again."""
    for n in range(3):
        photo_factory(tmp_path / "photos", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"photos": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    old = tmp_path / "photos.ledger.sqlite"
    done = aihd(["ledger", "import", str(old), "--into", pg_url], None)
    assert done.returncode == 0 and "3 photos" in done.stdout, done.stderr
    twice = aihd(["ledger", "import", str(old), "--into", pg_url], None)
    assert "imported into" in twice.stdout and "before" in twice.stdout
    assert aihd(["run", str(pg_manifest(tmp_path, pg_url, name="pg.yaml")), *FAST], sandbox)
    assert sorted(sandbox.stats().charges.values()) == [1] * 3
    assert sql(pg_url, "SELECT count(*) FROM order_posts") == [(3,)]
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT count(*) FROM photos").fetchone() == (3,)


def wait_for_intent_on_the_window_lock(
    url: str, holder: psycopg.Connection[tuple[object, ...]]
) -> int:
    """Until a run's backend waits on the account's window lock: its intent is open, not
    committed. Returns that backend's pid."""
    name, _ = database(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = holder.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND wait_event = 'advisory'",
            (name,),
        ).fetchall()
        if found:
            return int(str(found[0][0]))
        time.sleep(0.02)
    raise AssertionError("no run waited on the window lock")


@pytest.mark.slow
def test_a_connection_lost_between_intent_and_post_sends_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """The intent's transaction is cut before COMMIT and the database stays away: no POST,
    exit 7, the photo still unpaid; the next run orders it once."""
    photo_factory(tmp_path / "photos", "p.jpg")
    manifest = pg_manifest(tmp_path, pg_url, concurrency=1)
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_WINDOW,))  # the run's intent waits
        run = spawn_aihd(["run", str(manifest), *FAST], sandbox,
                         env={"AIHD_LEDGER_RETRY_SECONDS": "1"})  # fmt: skip
        backend = wait_for_intent_on_the_window_lock(pg_url, holder)
        # The holder keeps the window lock until the run has exited: were it dropped with
        # the run's backend, the run could take the lock and commit its intent in the moment
        # before its own backend's turn to be terminated (seen on a busy machine).
        shut_out(pg_url, keep=holder.info.backend_pid)  # the run's backend, mid-intent
        assert backend not in [
            r[0] for r in sql(database(pg_url)[1], "SELECT pid FROM pg_stat_activity")
        ]
        _, err = run.communicate(timeout=60)
    assert run.returncode == 7, err
    assert "unreachable" in err and "Traceback" not in err
    stats = sandbox.stats()
    assert (stats.order_posts, stats.charges) == (0, {})
    let_in(pg_url)
    (row,) = rows_of(pg_url)
    assert row.state in (State.PENDING, State.UPLOADED) and not row.charged
    assert sql(pg_url, "SELECT count(*) FROM order_posts") == [(0,)]
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 0, done.stderr
    assert list(sandbox.stats().charges.values()) == [1]


@pytest.mark.slow
def test_a_connection_lost_for_a_moment_is_retried_and_the_run_finishes(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """The run's backend is killed mid-intent and the database stays up: the run reconnects,
    makes the intent again, and every photo is paid once."""
    for n in range(3):
        photo_factory(tmp_path / "photos", f"p{n}.jpg")
    manifest = pg_manifest(tmp_path, pg_url, concurrency=1)
    with psycopg.connect(pg_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_WINDOW,))
        run = spawn_aihd(["run", str(manifest), *FAST], sandbox)
        backend = wait_for_intent_on_the_window_lock(pg_url, holder)
        holder.execute("SELECT pg_terminate_backend(%s)", (backend,))
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_WINDOW,))
        _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert sorted(sandbox.stats().charges.values()) == [1] * 3
    assert {r.state for r in rows_of(pg_url)} == {State.SUBMITTED}


def test_the_ledger_password_never_appears_in_output_or_log(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """A password in the ledger URL is shown as *** in the summary, the log and messages."""
    photo_factory(tmp_path / "photos", "p.jpg")
    with_password = pg_url.replace("aihd@", "aihd:Sup3rSecretPw@", 1)
    manifest = pg_manifest(tmp_path, with_password)
    log = tmp_path / "run.log"
    done = aihd(["run", str(manifest), *FAST, "--log-file", str(log)], sandbox)
    assert done.returncode == 0, done.stderr
    assert "aihd:***@" in done.stdout
    for text in (done.stdout, done.stderr, log.read_text()):
        assert "Sup3rSecretPw" not in text


def test_an_intent_left_by_a_dead_run_elsewhere_is_reconciled_after_its_lease(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """A run on another host died after its POST: its photo waits for the lease, then the
    next run here asks the API about the order and records the charge, paying nothing again."""
    photo_factory(tmp_path / "photos", "p.jpg")
    manifest = pg_manifest(tmp_path, pg_url)
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    # As the other host left it: the intent recorded, the POST charged, the answer never.
    sql(pg_url, "UPDATE photos SET state = 'submitting', charged = 0, image_id = NULL, "
        "claimed_by = 'elsewhere|boot|4242|run', "
        "claim_until = extract(epoch FROM clock_timestamp()) + 3600")  # fmt: skip
    sql(pg_url, "UPDATE order_posts SET outcome = NULL, answer_at = NULL")
    held = aihd(["run", str(manifest), *FAST], sandbox)
    assert held.returncode == 0, held.stderr
    assert [r.state for r in rows_of(pg_url)] == [State.SUBMITTING]  # its lease is live
    sql(pg_url, "UPDATE photos SET claim_until = extract(epoch FROM clock_timestamp()) - 1")
    taken = aihd(["run", str(manifest), *FAST], sandbox)
    assert taken.returncode == 0, taken.stderr
    (row,) = rows_of(pg_url)
    assert (row.state, row.charged) == (State.SUBMITTED, True)
    assert list(sandbox.stats().charges.values()) == [1]
    assert sandbox.stats().order_posts == 1


def kill_backends(url: str) -> None:
    """Terminate aihd's connections to this database, as a lost network would."""
    name, admin = database(url)
    sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
        "AND application_name = 'aihd'", (name,))  # fmt: skip


def in_one_group(ledger: Ledger, *writes: tuple[Callable[..., object], ...]) -> list[object]:
    """Make ``writes`` (a function, then its arguments) as the runner does: queued in one turn
    of an event loop, one group commit; each one's result or exception, in order."""

    async def queue_all() -> list[object]:
        group = GroupCommit(ledger)
        return await asyncio.gather(
            *(group.call(fn, *args) for fn, *args in writes), return_exceptions=True
        )

    return asyncio.run(queue_all())


def once(action: Callable[[], object]) -> Callable[[], None]:
    """``action`` the first time the group is made, nothing when it is made again."""
    done: list[bool] = []

    def write() -> None:
        if not done:
            done.append(True)
            action()

    return write


def test_a_group_cut_mid_way_is_made_again_whole_on_a_new_connection(
    ledger: PostgresLedger, pg_url: str
) -> None:
    """The writes of one group before and after a lost connection are all committed, once."""
    rows = ledger.record_found([found(f"/m/{n}.jpg", sha=f"{n:064d}") for n in range(2)])
    outcomes = in_one_group(
        ledger,
        (ledger.mark_uploaded, rows[0].id, "order-0"),
        (once(lambda: kill_backends(pg_url)),),
        (ledger.mark_uploaded, rows[1].id, "order-1"),
    )
    assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
    assert [r.order_id for r in rows_of(pg_url)] == ["order-0", "order-1"]


def test_an_intent_whose_group_was_cut_and_whose_photo_changed_meanwhile_is_refused(
    ledger: PostgresLedger, pg_url: str
) -> None:
    """The group is made again from the start on the ledger as it now is: the intent is
    refused (its POST is never sent), the other writes are made, no intent is in the ledger."""
    (row,) = ledger.record_found([found("/m/a.jpg")])
    ledger.mark_uploaded(row.id, "order-a")

    def cut_and_change() -> None:
        kill_backends(pg_url)
        sql(pg_url, "UPDATE photos SET state = 'failed'")  # another run, meanwhile

    intent, _, failed = in_one_group(
        ledger,
        (ledger.mark_submitting, row.id),
        (once(cut_and_change),),
        (functools.partial(ledger.mark_failed, retryable=True), row.id, "x"),
    )
    assert isinstance(intent, SubmitRefused) and "it is failed, not uploaded" in str(intent)
    assert isinstance(failed, PhotoRow) and failed.state is State.FAILED
    assert sql(pg_url, "SELECT count(*) FROM order_posts") == [(0,)]


def test_a_claim_refused_in_a_group_that_was_cut_is_granted_when_it_is_made_again(
    ledger: PostgresLedger, pg_url: str
) -> None:
    """What a write answered in a group that was rolled back is void: a claim refused then,
    granted when the group is made again, reaches its caller as granted (were the first answer
    kept, the run would skip a photo the ledger says it holds, and nobody would order it)."""
    row, other = ledger.record_found([found("/m/a.jpg"), found("/n/b.jpg", sha="b" * 64)])
    ledger.owner = "host-a|boot|1|run"
    ledger.claim_batch = 1
    sql(pg_url, "UPDATE photos SET claimed_by = 'host-b|boot|2|run', "
        "claim_until = extract(epoch FROM clock_timestamp()) + 600")  # fmt: skip

    def cut_then_release() -> None:
        kill_backends(pg_url)  # first: the group's transaction holds the photo's row
        sql(pg_url, "UPDATE photos SET claimed_by = NULL, claim_until = NULL")  # b ends

    claimed, *_ = in_one_group(
        ledger,
        (ledger.claim, row.id),
        (once(cut_then_release),),
        (ledger.mark_uploaded, other.id, "order-b"),  # finds the connection lost: made again
    )
    assert claimed is True
    assert sql(pg_url, "SELECT claimed_by FROM photos WHERE id = %s", (row.id,)) == [
        ("host-a|boot|1|run",)
    ]
    # Cut at its COMMIT (which may have landed), the group is made again only if every write
    # answers as it did: a claim that now answers otherwise fails the group, never the old no.
    sql(pg_url, "UPDATE photos SET claimed_by = 'host-b|boot|2|run', "
        "claim_until = extract(epoch FROM clock_timestamp()) + 600")  # fmt: skip
    (at_commit, _) = in_one_group(ledger, (ledger.claim, row.id), (once(cut_then_release),))
    assert isinstance(at_commit, LedgerError) and "could not be made again" in str(at_commit)


def test_two_machines_deadlocked_on_the_window_and_the_finding_lock_both_get_through(
    pg_url: str,
) -> None:
    """One group holds the window and wants the finding lock, the other the reverse: the
    database picks a victim, which rolls back and makes its group again; both are written."""
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    rule = WindowRule(orders=10, per_seconds=60, answer_within=5)
    try:
        x, y = a.record_found([found("/a/x.jpg", sha="1" * 64), found("/b/y.jpg", sha="2" * 64)])
        a_has, b_has = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def machine_b() -> None:
            errors.extend(
                o
                for o in in_one_group(
                    b,
                    (b.record_found, [found("/b/z.jpg", sha="3" * 64)]),  # the finding lock
                    (b_has.set,),
                    (a_has.wait, 10),
                    (functools.partial(b.mark_submitting, window=rule), y.id, "order-y"),
                )
                if isinstance(o, BaseException)
            )

        other = threading.Thread(target=machine_b)
        other.start()
        outcomes = in_one_group(
            a,
            (functools.partial(a.mark_submitting, window=rule), x.id, "order-x"),  # the window
            (a_has.set,),
            (b_has.wait, 10),
            (a.record_found, [found("/a/w.jpg", sha="4" * 64)]),  # then b's finding lock
        )
        other.join(30)
        errors.extend(o for o in outcomes if isinstance(o, BaseException))
        assert errors == []
        assert sql(pg_url, "SELECT count(*) FROM order_posts") == [(2,)]
        assert {r.path: r.state for r in rows_of(pg_url)}["/b/y.jpg"] is State.SUBMITTING
        assert len(rows_of(pg_url)) == 4
    finally:
        a.close()
        b.close()


def test_a_v3_run_on_a_postgresql_ledger_keeps_its_project_and_pays_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, pg_url: str
) -> None:
    """`api: v3` with a PostgreSQL ledger: one project per listing kept in the database, one
    process per photo, nothing paid again on a re-run; a SQLite ledger's projects import."""
    for n in range(2):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(
        tmp_path, {"12-oak-st/inside": ("indoor", [])}, ledger=pg_url, api="v3"
    )  # type: ignore[arg-type]
    for _ in range(2):
        done = aihd(["run", str(manifest), *FAST], sandbox)
        assert done.returncode == 0, done.stderr
    assert sorted(sandbox.stats().charges.values()) == [1, 1]
    assert {(r.state, r.service) for r in rows_of(pg_url)} == {
        (State.SUBMITTED, "v3:tool-image-enhancement")
    }
    (project,) = sql(pg_url, "SELECT address, project_id FROM v3_projects")
    assert project[0] == "12-oak-st"
    old = tmp_path / "old.ledger.sqlite"
    source = SqliteLedger(old)
    source.save_v3_project("default", "9 Elm St", "p-elm")
    source.close()
    assert aihd(["ledger", "import", str(old), "--into", pg_url], None).returncode == 0
    opened = open_ledger(pg_url)
    try:
        assert opened.v3_project("default", "9 ELM ST ") == "p-elm"
        opened.save_v3_project("default", "9 elm st", "p-other")  # the first one kept stays
        assert opened.v3_project("default", "9 elm st") == "p-elm"
    finally:
        opened.close()
