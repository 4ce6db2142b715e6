"""The PostgreSQL ledger's plumbing: one connection, transactions made again after a lost
connection, the run lock of `aihd collect`, and claims (see postgres.py for the whole)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg

from pipeline.bootclock import owner_alive
from pipeline.errors import LedgerBusy, LedgerError, LedgerUnreachable
from pipeline.ledger import postgres_sql as q
from pipeline.ledger.postgres_schema import LOCK_RUN, migrate
from pipeline.ledger.records import PhotoRow
from pipeline.ledger.sqlite_rows import COLUMNS, now_text, row_of

T = TypeVar("T")
RETRY_ENV = "AIHD_LEDGER_RETRY_SECONDS"
INSERT = (
    f"INSERT INTO photos ({COLUMNS}, current, created_at, manifest) "
    f"VALUES ({', '.join(['%s'] * (COLUMNS.count(',') + 4))})"
)


class NotEligible(Exception):
    """A guarded UPDATE matched no row: the photo is not in the state the change needs."""


def is_url(location: object) -> bool:
    """A PostgreSQL ledger's location (``postgresql://...`` or ``postgres://...``)."""
    return str(location).startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for every message and log line."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class PostgresBase:
    """Connection, retries, the run lock and claims of the PostgreSQL ledger."""

    def __init__(self, url: str, *, retry_seconds: float | None = None) -> None:
        self._url = url
        self.path = redact(url)
        self.owner: str | None = None
        self.lease_seconds = 60.0
        self.claim_batch = 16
        self._claimed: set[int] = set()
        self._mutex = threading.RLock()
        self._depth = 0
        self._conn: q.Conn | None = None
        self._lock_conn: q.Conn | None = None
        env = os.environ.get(RETRY_ENV, "").strip()
        self.retry_seconds = retry_seconds if retry_seconds is not None else float(env or 60)
        self._away = False  # it stayed away once: later calls try once, not for retry_seconds
        try:
            self._run(lambda conn: migrate(conn, self.path), transaction=False)
        except BaseException:
            self._drop()
            raise

    # -- plumbing -----------------------------------------------------------------------------

    def _connect(self) -> q.Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=5, application_name="aihd"
            )
        return self._conn

    def _run(self, body: Callable[[q.Conn], T], *, transaction: bool = True) -> T:
        """``body`` in one transaction (or a savepoint of the caller's); made again from the
        start on a fresh connection when the connection is lost, until retry_seconds pass."""
        with self._mutex:
            if self._depth:
                assert self._conn is not None
                with self._conn.transaction():
                    return body(self._conn)
            started, delay = time.monotonic(), 0.05
            while True:
                try:
                    conn = self._connect()
                    self._away = False
                    self._depth = 1
                    try:
                        if not transaction:
                            return body(conn)
                        with conn.transaction():
                            return body(conn)
                    finally:
                        self._depth = 0
                except psycopg.OperationalError as exc:
                    if self._conn is not None and not self._conn.broken and not self._conn.closed:
                        raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc
                    self._drop()
                    if self._away or time.monotonic() - started + delay > self.retry_seconds:
                        self._away = True
                        raise LedgerUnreachable(
                            f"ledger {self.path} unreachable for {self.retry_seconds:.0f} s: "
                            f"{first_line(exc)}; the run stopped with everything it recorded "
                            "kept: run again when the database is back"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                except psycopg.Error as exc:
                    raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self._run(lambda c: c.execute(sql, tuple(params)).fetchall(), transaction=False)

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """No group: each write commits alone (see the module's docstring)."""
        yield

    def close(self) -> None:
        self.release_run_lock()
        with self._mutex:
            self._drop()

    def _one(self, c: q.Conn, photo_id: int) -> PhotoRow:
        r = c.execute(f"SELECT {COLUMNS} FROM photos WHERE id = %s", (photo_id,)).fetchone()
        if r is None:
            raise LedgerError(f"ledger {self.path} has no photo with id {photo_id}")
        return row_of(r)

    def _mark(
        self,
        photo_id: int,
        sets: str,
        params: Sequence[object],
        *,
        only_if: str = "",
        only_if_params: Sequence[object] = (),
    ) -> PhotoRow:
        def body(c: q.Conn) -> PhotoRow:
            found = c.execute(
                f"UPDATE photos SET {sets}, updated_at = %s WHERE id = %s {only_if} "
                f"RETURNING {COLUMNS}",
                (*params, now_text(), photo_id, *only_if_params),
            ).fetchone()
            if found is None:
                self._one(c, photo_id)  # raises for an unknown id
                raise NotEligible
            return row_of(found)

        return self._run(body)

    # -- the run lock (`aihd collect`) --------------------------------------------------------

    def acquire_run_lock(self, holder: str) -> None:
        """A session-level advisory lock on a connection of its own, held until release."""
        if self._lock_conn is not None:
            raise LedgerError(f"this process already holds the run lock of ledger {self.path}")
        try:
            conn: q.Conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise LedgerUnreachable(f"ledger {self.path}: {first_line(exc)}") from exc
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_RUN,)).fetchone()
        if not row or not row[0]:
            note = conn.execute("SELECT note FROM run_lock WHERE only_one = 1").fetchone()
            conn.close()
            held = json.loads(note[0]) if note else {}
            raise LedgerBusy(
                f"ledger {self.path} is in use by pid {held.get('pid', '?')} on host "
                f"{held.get('host', '?')}: {held.get('holder', '')} since "
                f"{held.get('since', 'an unknown time')}; wait for it to finish or stop it"
            )
        note_text = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "holder": holder,
             "since": now_text()}
        )  # fmt: skip
        conn.execute(
            "INSERT INTO run_lock VALUES (1, %s) ON CONFLICT (only_one) DO UPDATE SET note = %s",
            (note_text, note_text),
        )
        self._lock_conn = conn

    def release_run_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_RUN,))
            except psycopg.Error:
                pass  # the connection is gone: so is its lock
            finally:
                conn.close()

    # -- claims -------------------------------------------------------------------------------

    def claim(self, photo_id: int) -> bool:
        """Take the photo for this run (``owner``) unless another live run holds it; with it,
        the next few open photos of its folder, in one ``FOR UPDATE SKIP LOCKED`` batch, so
        the next calls need no round trip. Leases run on the database's clock."""
        owner = self.owner
        if owner is None:
            return True
        if photo_id in self._claimed:
            self._claimed.discard(photo_id)
            return True

        def body(c: q.Conn) -> bool:
            free = "(claimed_by IS NULL OR claimed_by = %s OR claim_until < %s)"
            clock = c.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            assert clock is not None
            now = float(clock[0])
            this = c.execute(
                f"SELECT id, folder FROM photos WHERE id = %s AND {free} FOR UPDATE SKIP LOCKED",
                (photo_id, owner, now),
            ).fetchone()
            taken = {photo_id} if this is not None else set()
            if this is not None and self.claim_batch > 1:
                taken |= {
                    int(r[0])
                    for r in c.execute(
                        "SELECT id FROM photos WHERE folder = %s AND id > %s AND current = 1 "
                        f"AND state IN ('pending', 'uploaded', 'submitting') AND {free} "
                        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (this[1], photo_id, owner, now, self.claim_batch - 1),
                    )
                }
            if photo_id not in taken:
                # Locked a moment ago, or held: wait for the row, then look at its holder.
                found = c.execute(
                    "SELECT claimed_by, claim_until FROM photos WHERE id = %s FOR UPDATE",
                    (photo_id,),
                ).fetchone()
                if found is None:
                    raise LedgerError(f"ledger {self.path} has no photo with id {photo_id}")
                holder, until = found
                lapsed = holder is None or holder == owner or until is None or until < now
                if not lapsed and owner_alive(str(holder)):
                    return False  # another live run has it
                taken.add(photo_id)
            c.execute(
                "UPDATE photos SET claimed_by = %s, claim_until = %s WHERE id = ANY(%s)",
                (owner, now + self.lease_seconds, list(taken)),
            )
            self._claimed |= taken - {photo_id}
            return True

        return self._run(body)

    def renew_claims(self) -> None:
        if self.owner is not None:
            self._run(
                lambda c: c.execute(
                    "UPDATE photos SET claim_until = extract(epoch FROM clock_timestamp()) + %s "
                    "WHERE claimed_by = %s",
                    (self.lease_seconds, self.owner),
                )
            )

    def release_claims(self) -> None:
        self._claimed.clear()
        if self.owner is not None:
            self._run(
                lambda c: c.execute(
                    "UPDATE photos SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = %s",
                    (self.owner,),
                )
            )


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
