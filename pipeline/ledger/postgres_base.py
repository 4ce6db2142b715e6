"""The PostgreSQL ledger's plumbing: one connection, transactions made again after a lost
connection, the run lock, and claims (see postgres.py for the whole)."""

from __future__ import annotations

__all__ = [
    "DEADLOCK_PAUSE",
    "INSERT",
    "RETRY_ENV",
    "PostgresBase",
    "T",
    "first_line",
    "redact",
]

import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NoReturn, TypeVar

import psycopg
import psycopg.errors

from pipeline.errors import (
    GroupRolledBack,
    LedgerError,
    LedgerUnreachable,
    NotEligible,
    UsageError,
)
from pipeline.ledger import postgres_sql as q
from pipeline.ledger import sqlite_rows
from pipeline.ledger import statements as S
from pipeline.ledger.postgres_schema import migrate
from pipeline.ledger.records import PhotoRow
from pipeline.ledger.sqlite_rows import now_text, row_of
from pipeline.ledger.window_log import WindowLog

T = TypeVar("T")
DEADLOCK_PAUSE = 0.02  # seconds before a transaction chosen as a deadlock's victim is made again
RETRY_ENV = "AIHD_LEDGER_RETRY_SECONDS"
INSERT = q.pg(sqlite_rows.INSERT)
_PHOTO_BY_ID = q.pg(S.PHOTO_BY_ID)


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
        self._fences: dict[int, int] = {}  # photo -> the fencing token of this run's claim
        self._mutex = threading.RLock()
        self._depth = 0
        self._conn: q.Conn | None = None
        self._lock_conn: q.Conn | None = None
        self.retry_seconds = retry_seconds if retry_seconds is not None else _retry_from_env()
        self._away = False  # it stayed away once: later calls try once, not for retry_seconds
        self._group: list[tuple[Callable[[q.Conn], Any], object]] | None = None
        self._group_error: LedgerError | None = None
        # The account's recent order POSTs as this handle has read them (window_log.py), and
        # whether the open transaction wrote any: if it is rolled back, the log forgets them.
        self._window_log = WindowLog()
        self._posts_written = False
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
        """``body`` in one transaction (a savepoint inside a caller's, or a group's); made again
        from the start on a fresh connection when the connection is lost, until
        retry_seconds pass."""
        with self._mutex:
            if self._depth:
                return self._savepoint(body)
            if self._group is not None:
                return self._in_group(body)
            started, delay = time.monotonic(), 0.05
            while True:
                try:
                    conn = self._connect()
                    self._away = False
                    self._depth = 1
                    try:
                        if not transaction:
                            return body(conn)
                        try:
                            with conn.transaction():
                                result = body(conn)
                        except BaseException:
                            self._rolled_back()
                            raise
                        self._posts_written = False  # committed
                        return result
                    finally:
                        self._depth = 0
                except psycopg.errors.DeadlockDetected:
                    time.sleep(DEADLOCK_PAUSE)  # the other transaction goes on: try again
                except psycopg.OperationalError as exc:
                    if not self._lost():
                        raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc
                    delay = self._wait_to_reconnect(exc, started, delay)
                except psycopg.Error as exc:
                    raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc

    def _rolled_back(self, *, ended: bool = True) -> None:
        """A transaction (or, not ``ended``, a savepoint of it) was undone: the window's log
        may hold rows or answers it wrote, which are not there now."""
        if self._posts_written:
            self._window_log.forget()
            self._posts_written = not ended  # the rest of the transaction may still write

    def _lost(self) -> bool:
        return self._conn is None or self._conn.broken or self._conn.closed

    def _wait_to_reconnect(self, exc: Exception, started: float, delay: float) -> float:
        """Drop the connection and sleep before the next try; LedgerUnreachable past the
        retry time. Returns the next delay."""
        self._drop()
        if self._away or time.monotonic() - started + delay > self.retry_seconds:
            self._away = True
            raise LedgerUnreachable(
                f"ledger {self.path} unreachable for {self.retry_seconds:.0f} s: "
                f"{first_line(exc)}; the run stopped with everything it recorded "
                "kept: run again when the database is back"
            ) from exc
        time.sleep(delay)
        return min(delay * 2, 2.0)

    def _savepoint(self, body: Callable[[q.Conn], T]) -> T:
        """``body`` in a savepoint of the open transaction: its failure undoes it alone."""
        conn = self._conn
        assert conn is not None
        name = f"aihd_{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            result = body(conn)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.DeadlockDetected) or (
                isinstance(exc, psycopg.OperationalError) and self._lost()
            ):
                raise
            self._rolled_back(ended=False)
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc
        except BaseException:
            self._rolled_back(ended=False)
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            raise
        finally:
            self._depth -= 1
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return result

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self._run(lambda c: c.execute(sql, tuple(params)).fetchall(), transaction=False)

    # -- groups: the writes of one event-loop turn in one transaction (groupcommit.py) --------

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Writes made inside share one transaction, each in a savepoint of its own (one that
        fails is undone alone) and one COMMIT. A deadlock or a lost connection before COMMIT
        rolls the whole group back: GroupRolledBack, for the caller to make it again. A
        connection lost AT its COMMIT (which may have landed) is reconnected and the group's
        writes made again in order; if one of them does not come out as it did (the COMMIT
        had landed, another machine's change meanwhile), every write of the group fails,
        none believed written."""
        with self._mutex:
            if self._group is not None or self._depth:
                yield
                return
            self._run(lambda c: c.execute("BEGIN"), transaction=False)
            self._group, self._group_error = [], None
            try:
                yield
                if self._group_error is not None:
                    raise self._group_error
                self._commit_group()
                self._posts_written = False  # committed
            except BaseException:
                self._rolled_back()
                if not self._lost():
                    assert self._conn is not None
                    with suppress(psycopg.Error):
                        self._conn.execute("ROLLBACK")
                raise
            finally:
                self._group, self._group_error = None, None

    def _in_group(self, body: Callable[[q.Conn], T]) -> T:
        if self._group_error is not None:
            raise self._group_error
        assert self._group is not None
        try:
            result = self._savepoint(body)
        except psycopg.errors.DeadlockDetected as exc:
            # Chosen as the victim of a deadlock with another machine's transaction: the whole
            # group is rolled back (grouped() does it) and made again from the start.
            self._abandon_group(exc)
        except psycopg.OperationalError as exc:
            if not self._lost():
                raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc
            self._abandon_group(exc)  # the server rolled it back with the connection
        except Exception as exc:
            self._group.append((body, _outcome(exc)))
            raise
        self._group.append((body, _outcome(result)))
        return result

    def _abandon_group(self, exc: Exception) -> NoReturn:
        """Before COMMIT, the group's transaction is certainly rolled back: what its earlier
        writes returned is void (a claim refused then may be granted now, an intent granted
        then may find the window full now), so the group is made again from the start by its
        caller, each write getting its new result (GroupRolledBack, groupcommit.py). Replaying
        the writes here and keeping their first results once handed a run a claim it did not
        hold, and kept from it one it did: a photo nobody ordered that night."""
        self._claimed.clear()  # the batch claims it cached may be among the rolled back
        self._rolled_back()
        self._group_error = GroupRolledBack(
            f"ledger {self.path}: a group of writes was rolled back ({first_line(exc)}); "
            "nothing of it was written: make it again"
        )
        raise self._group_error from exc

    def _commit_group(self) -> None:
        while True:
            assert self._conn is not None
            try:
                self._conn.execute("COMMIT")
                return
            except psycopg.OperationalError as exc:
                if not self._lost():
                    raise LedgerError(f"ledger {self.path}: {first_line(exc)}") from exc
                self._replay_group(exc)

    def _replay_group(self, exc: Exception, *, reconnect: bool = True) -> None:
        """On a fresh connection, BEGIN and make the group's writes again; each must come out
        as it did, or the whole group fails (``_group_error``)."""
        assert self._group is not None
        self._window_log.forget()  # what the group wrote is made again, with new ids
        started, delay = time.monotonic(), 0.05
        while True:
            if reconnect:
                try:
                    delay = self._wait_to_reconnect(exc, started, delay)
                except LedgerUnreachable as away:
                    self._group_error = away
                    raise
            else:
                time.sleep(DEADLOCK_PAUSE)
                reconnect = True  # a later failure here is a lost connection
            try:
                self._connect().execute("BEGIN")
                for body, outcome in self._group:
                    try:
                        again = _outcome(self._savepoint(body))
                    except psycopg.OperationalError:
                        raise
                    except Exception as other:
                        again = _outcome(other)
                    if again != outcome:
                        self._group_error = LedgerError(
                            f"ledger {self.path}: the connection was lost in a group of writes "
                            "that could not be made again as they were; nothing of it is "
                            "taken as written: run again"
                        )
                        raise self._group_error
                return
            except psycopg.errors.DeadlockDetected as again:
                assert self._conn is not None
                self._conn.execute("ROLLBACK")
                exc, reconnect = again, False
            except psycopg.OperationalError as lost:
                exc = lost

    def close(self) -> None:
        with self._mutex:
            self._drop()

    def _one(self, c: q.Conn, photo_id: int) -> PhotoRow:
        r = c.execute(_PHOTO_BY_ID, (photo_id,)).fetchone()
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
                q.pg(S.mark_sql(sets, only_if)),
                (*params, now_text(), photo_id, *only_if_params),
            ).fetchone()
            if found is None:
                self._one(c, photo_id)  # raises for an unknown id
                raise NotEligible
            return row_of(found)

        return self._run(body)


def _outcome(result: object) -> object:
    """What a write of a group must give again when the group is made again after a cut
    COMMIT: its exception's type, or its answer when that is a yes or no (a claim)."""
    if isinstance(result, BaseException):
        return type(result)
    return result if isinstance(result, bool) else None


def _retry_from_env() -> float:
    """AIHD_LEDGER_RETRY_SECONDS (default 60): a finite number of seconds, at most a day."""
    text = os.environ.get(RETRY_ENV, "").strip()
    try:
        seconds = float(text) if text else 60.0
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= 86400):
        raise UsageError(
            f"{RETRY_ENV}={text!r} is not a number of seconds from 0 to 86400: set it to how "
            f"long to wait for the ledger's database, e.g. {RETRY_ENV}=60, or unset it"
        )
    return seconds


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
