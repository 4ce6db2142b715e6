"""The ledger in one SQLite file: WAL, ``synchronous=FULL``, a sidecar ``.lock`` for the run lock.

Every change is one short transaction that is on disk when the call returns (or one group of
them, see groupcommit.py). Rows are encoded here; what they mean is in ledger.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline._migrations import migrate
from pipeline.errors import LedgerBusy, LedgerError
from pipeline.ledger import FoundPhoto, KnownFile, PhotoRow, RunRecord, State

__all__ = ["SqliteLedger"]


class _NotEligible(Exception):
    """A guarded UPDATE matched no row: the photo is not in the state the change needs."""


_COLUMNS = (
    "id, path, folder, sha256, size, mtime_ns, service, space, enhancements, identity, state, "
    "order_id, image_id, eta, submitted_at, result_urls, output_paths, attempts, error, "
    "retryable, duplicate_of, updated_at"
)
_INSERT = (
    f"INSERT INTO photos ({_COLUMNS}, current, created_at) "
    f"VALUES ({', '.join('?' * (_COLUMNS.count(',') + 3))})"
)
_BUSY_TIMEOUT_MS = 5000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@lru_cache(maxsize=1024)
def _titles(text: str) -> tuple[str, ...]:
    # Cached: a ledger holds few distinct option sets, so rows share one tuple each.
    return tuple(json.loads(text))


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


@lru_cache(maxsize=1024)
def _titles_json(titles: tuple[str, ...]) -> str:
    return json.dumps(list(titles))


def _strings_json(strings: tuple[str, ...]) -> str:
    return json.dumps(list(strings)) if strings else "[]"


_STATES = {s.value: s for s in State}  # a dict lookup is several times faster than State(text)


def _row(r: Sequence[Any]) -> PhotoRow:
    return PhotoRow(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _titles(r[8]), r[9], _STATES[r[10]],
        r[11], r[12], r[13], r[14], _strings(r[15]), _strings(r[16]), r[17], r[18], bool(r[19]),
        r[20], r[21],
    )  # fmt: skip


def _encode(row: PhotoRow, current: bool, created_at: str) -> tuple[object, ...]:
    return (
        row.id, row.path, row.folder, row.sha256, row.size, row.mtime_ns, row.service, row.space,
        _titles_json(row.enhancements), row.identity, row.state.value, row.order_id,
        row.image_id, row.eta, row.submitted_at, _strings_json(row.result_urls),
        _strings_json(row.output_paths), row.attempts, row.error, int(row.retryable),
        row.duplicate_of, row.updated_at, int(current), created_at,
    )  # fmt: skip


def _new_row(
    photo_id: int, found: FoundPhoto, identity: str, now: str, duplicate_of: int | None
) -> PhotoRow:
    state = State.PENDING if duplicate_of is None else State.DUPLICATE
    o = found.options
    return PhotoRow(
        photo_id, found.path, found.folder, found.sha256, found.size, found.mtime_ns, o.service,
        o.space, o.enhancements, identity, state, None, None, None, None, (), (), 0, None, False,
        duplicate_of, now,
    )  # fmt: skip


class SqliteLedger:
    """The ledger in one SQLite file, with a sidecar ``.lock`` file for the run lock."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._lock_fd: int | None = None
        self._mutex = threading.RLock()  # one transaction at a time if threads share the handle
        self._depth = 0
        if path.is_dir():
            raise LedgerError(f"cannot open ledger {path}: it is a folder; name a file instead")
        with self._guard("open"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        try:
            with self._guard("open"):
                self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                migrate(self._conn, self.path)
                if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
                self._conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteLedger({self.path!r})"

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """The one place sqlite3 and file errors become a LedgerError."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(
                f"cannot {action} ledger {self.path}: {exc}; check the path is writable "
                "and is an aihd ledger, not a file of another tool"
            ) from exc

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) on exit; nested calls join it."""
        with self._mutex, self._guard("write"):
            if self._depth:
                if not self._conn.in_transaction:
                    # An error inside this group (a full disk) rolled the whole transaction
                    # back: writing on would commit each statement alone, outside the group.
                    raise LedgerError(
                        f"cannot write ledger {self.path}: its transaction was rolled back"
                    )
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                # Some errors (a full disk) have already rolled back; do not mask them.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Writes made inside share one transaction and one commit (see groupcommit.py)."""
        with self.atomic():
            yield

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._mutex, self._guard("read"):
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.release_run_lock()
        with self._mutex, self._guard("close"):
            self._conn.close()

    # -- the run lock -------------------------------------------------------------------------

    def acquire_run_lock(self, holder: str) -> None:
        if self._lock_fd is not None:
            raise LedgerError(f"this process already holds the run lock of ledger {self.path}")
        # The resolved path: a symlink to the ledger (or a path through one) takes the lock of
        # the ledger it points at, not a lock of its own.
        lock_path = os.path.realpath(self.path) + ".lock"
        with self._guard("lock"):
            # No O_TRUNC: a process that fails to get the lock must not wipe the holder's note.
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note = _read_note(fd)
            os.close(fd)
            raise LedgerBusy(_busy_message(self.path, note)) from None
        except OSError as exc:
            os.close(fd)
            raise LedgerError(f"cannot lock ledger {self.path}: {exc}") from exc
        note = {"pid": os.getpid(), "host": socket.gethostname(), "holder": holder, "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        self._lock_fd = fd

    def release_run_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        with self.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, _now())
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, outcome: str, summary: Mapping[str, object]) -> None:
        with self.atomic() as conn:
            conn.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, summary = ? WHERE id = ?",
                (_now(), outcome, json.dumps(dict(summary), default=str), run_id),
            )

    def last_run(self) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return RunRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))

    # -- finding photos -----------------------------------------------------------------------

    def cached_hashes(self) -> dict[str, tuple[int, int, str]]:
        rows = self._read(
            "SELECT path, size, mtime_ns, sha256 FROM photos WHERE current = 1 AND sha256 != ''"
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def known_files(self, paths: Sequence[str]) -> dict[str, KnownFile]:
        """These photos' file facts and states, if current, in one query, for a fast re-run."""
        rows = self._read(
            "SELECT path, size, mtime_ns, sha256, identity, state, id FROM photos "
            "WHERE current = 1 AND sha256 != '' AND path IN (SELECT value FROM json_each(?))",
            (json.dumps(list(paths)),),
        )
        return {r[0]: KnownFile(r[1], r[2], r[3], r[4], _STATES[r[5]], r[6]) for r in rows}

    def record_found(self, found: Sequence[FoundPhoto]) -> list[PhotoRow]:
        with self.atomic() as conn:
            return _record_found(conn, found, _now())

    def record_broken(
        self, path: str, folder: str, size: int, mtime_ns: int, reason: str
    ) -> PhotoRow:
        # Broken files are not hashed: size and mtime stand in for content in the identity.
        identity = f"broken:{size}:{mtime_ns}"
        now = _now()
        with self.atomic() as conn:
            conn.execute(
                "UPDATE photos SET current = 0 WHERE path = ? AND current = 1 AND identity != ?",
                (path, identity),
            )
            done = conn.execute(
                "UPDATE photos SET state = 'failed', error = ?, retryable = 0, current = 1, "
                "folder = ?, updated_at = ? WHERE path = ? AND identity = ?",
                (reason, folder, now, path, identity),
            )
            if not done.rowcount:
                (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM photos").fetchone()
                row = PhotoRow(
                    next_id, path, folder, "", size, mtime_ns, "", "", (), identity, State.FAILED,
                    None, None, None, None, (), (), 0, reason, False, None, now,
                )  # fmt: skip
                conn.execute(_INSERT, _encode(row, True, now))
            return self._one(conn, "path = ? AND identity = ?", (path, identity))

    # -- reading ------------------------------------------------------------------------------

    def photos(
        self, states: Iterable[State] | None = None, *, current_only: bool = True
    ) -> list[PhotoRow]:
        where, params = ["1"], []
        if current_only:
            where.append("current = 1")
        if states is not None:
            wanted = [State(s).value for s in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        sql = f"SELECT {_COLUMNS} FROM photos WHERE {' AND '.join(where)} ORDER BY id"
        return [_row(r) for r in self._read(sql, params)]

    def get(self, photo_id: int) -> PhotoRow:
        rows = self._read(f"SELECT {_COLUMNS} FROM photos WHERE id = ?", (photo_id,))
        if not rows:
            raise LedgerError(f"ledger {self.path} has no photo with id {photo_id}")
        return _row(rows[0])

    def counts(self) -> dict[State, int]:
        counts = dict.fromkeys(State, 0)
        for state, n in self._read(
            "SELECT state, count(*) FROM photos WHERE current = 1 GROUP BY state"
        ):
            counts[State(state)] = n
        return counts

    def counts_by_folder(self) -> dict[str, dict[State, int]]:
        by_folder: dict[str, dict[State, int]] = {}
        for folder, state, n in self._read(
            "SELECT folder, state, count(*) FROM photos WHERE current = 1 "
            "GROUP BY folder, state ORDER BY folder"
        ):
            by_folder.setdefault(folder, dict.fromkeys(State, 0))[State(state)] = n
        return by_folder

    # -- state changes ------------------------------------------------------------------------

    def _one(self, conn: sqlite3.Connection, where: str, params: Sequence[object]) -> PhotoRow:
        r = conn.execute(f"SELECT {_COLUMNS} FROM photos WHERE {where}", params).fetchone()
        if r is None:
            raise LedgerError(f"ledger {self.path} has no photo where {where} {tuple(params)}")
        return _row(r)

    def _mark(
        self, photo_id: int, sets: str, params: Sequence[object], *, only_if: str = ""
    ) -> PhotoRow:
        """One UPDATE that returns the row (RETURNING: a run makes three of these per photo)."""
        with self.atomic() as conn:
            found = conn.execute(
                f"UPDATE photos SET {sets}, updated_at = ? WHERE id = ? {only_if} "
                f"RETURNING {_COLUMNS}",
                (*params, _now(), photo_id),
            ).fetchone()
            if found is None:
                self._one(conn, "id = ?", (photo_id,))  # raises for an unknown id
                raise _NotEligible
            return _row(found)

    def mark_uploaded(self, photo_id: int, order_id: str) -> PhotoRow:
        return self._mark(
            photo_id, "state = 'uploaded', order_id = ?, error = NULL, retryable = 0", (order_id,)
        )

    def mark_submitting(self, photo_id: int, order_id: str | None = None) -> PhotoRow:
        """Intent before spending; ``order_id`` records a fresh upload in the same commit."""
        # The last guard before money is spent: only an uploaded, never-duplicate photo.
        params: tuple[object, ...] = ()
        if order_id is None:
            sets = "state = 'submitting', attempts = attempts + 1"
            only_if = "AND state = 'uploaded' AND order_id IS NOT NULL"
        else:
            sets = "state = 'submitting', attempts = attempts + 1, order_id = ?, error = NULL"
            params, only_if = (order_id,), "AND state IN ('pending', 'uploaded')"
        try:
            return self._mark(photo_id, sets, params, only_if=only_if)
        except _NotEligible:
            row = self.get(photo_id)
            raise LedgerError(
                f"refusing to submit {row.path}: it is {row.state.value}, not uploaded "
                f"(ledger {self.path}, photo {photo_id})"
            ) from None

    def mark_submitted(self, photo_id: int, image_id: str | None, eta: int | None) -> PhotoRow:
        return self._mark(
            photo_id,
            "state = 'submitted', image_id = coalesce(?, image_id), eta = coalesce(?, eta), "
            "submitted_at = ?, error = NULL, retryable = 0",
            (image_id, eta, _now()),
        )

    def mark_failed(self, photo_id: int, error: str, *, retryable: bool) -> PhotoRow:
        # failed_from remembers a failure during submitting: that order may have been paid.
        return self._mark(
            photo_id,
            "failed_from = CASE WHEN state = 'failed' THEN failed_from ELSE state END, "
            "state = 'failed', error = ?, retryable = ?",
            (error, int(retryable)),
        )

    def mark_pending(self, photo_id: int) -> PhotoRow:
        return self._mark(
            photo_id,
            "state = 'pending', order_id = NULL, error = NULL, retryable = 0, failed_from = NULL",
            (),
        )

    def mark_completed(
        self, photo_id: int, result_urls: Sequence[str], output_paths: Sequence[str]
    ) -> PhotoRow:
        return self._mark(
            photo_id,
            "state = 'completed', result_urls = ?, output_paths = ?, error = NULL, retryable = 0",
            (json.dumps(list(result_urls)), json.dumps(list(output_paths))),
        )

    def reset_failed(self, *, include_permanent: bool) -> int:
        # A photo that failed while submitting goes back to submitting, so the runner asks the
        # API what became of its order instead of paying again. Broken files (no hash) are left:
        # the next scan checks them afresh.
        with self.atomic() as conn:
            cur = conn.execute(
                "UPDATE photos SET "
                "state = CASE WHEN failed_from = 'submitting' THEN 'submitting' "
                "ELSE 'pending' END, "
                "order_id = CASE WHEN failed_from = 'submitting' THEN order_id END, "
                "error = NULL, retryable = 0, failed_from = NULL, updated_at = ? "
                "WHERE state = 'failed' AND current = 1 AND sha256 != '' "
                "AND (retryable = 1 OR ?)",
                (_now(), int(include_permanent)),
            )
            return cur.rowcount


def _record_found(
    conn: sqlite3.Connection, found: Sequence[FoundPhoto], now: str
) -> list[PhotoRow]:
    """Find or add a row per photo in one transaction: a few queries, whatever the batch size."""
    paths = json.dumps(list({f.path for f in found}))
    stored: dict[tuple[str, str], Sequence[Any]] = {}  # decoded only when a photo matches
    current_of: dict[str, int] = {}  # path -> id of its current row before this call
    for r in conn.execute(
        f"SELECT {_COLUMNS}, current FROM photos WHERE path IN (SELECT value FROM json_each(?))",
        (paths,),
    ):
        stored[(r[1], r[9])] = r
        if r[22]:
            current_of[r[1]] = r[0]
    identities = [f.options.identity(f.sha256) for f in found]
    originals: dict[str, int] = {}
    next_id = 0
    missing = {i for f, i in zip(found, identities, strict=True) if (f.path, i) not in stored}
    if missing:
        # Any earlier row with this identity was (or will be) the one paid order for it.
        originals = dict(
            conn.execute(
                "SELECT identity, min(id) FROM photos WHERE state != 'duplicate' "
                "AND identity IN (SELECT value FROM json_each(?)) GROUP BY identity",
                (json.dumps(list(missing)),),
            ).fetchall()
        )
        # Ids are chosen here (the write lock is held) so in-batch copies can point at them.
        (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM photos").fetchone()
    known: dict[tuple[str, str], PhotoRow] = {}
    inserts: dict[int, PhotoRow] = {}
    refreshed: dict[int, PhotoRow] = {}
    final_current: dict[str, int] = {}
    result: list[PhotoRow] = []
    for photo, identity in zip(found, identities, strict=True):
        key = (photo.path, identity)
        row = known.get(key)
        if row is None and (raw := stored.get(key)) is not None:
            row = known[key] = _row(raw)
        if row is None:
            row = _new_row(next_id, photo, identity, now, originals.get(identity))
            next_id += 1
            originals.setdefault(identity, row.id)
            inserts[row.id] = known[key] = row
        elif (row.folder, row.size, row.mtime_ns) != (photo.folder, photo.size, photo.mtime_ns):
            # Same content and options, touched or moved between folders: keep the hash cache true.
            row = row._replace(folder=photo.folder, size=photo.size, mtime_ns=photo.mtime_ns)
            (inserts if row.id in inserts else refreshed)[row.id] = known[key] = row
        final_current[photo.path] = row.id
        result.append(row)
    conn.executemany(
        "UPDATE photos SET current = 0 WHERE id = ?",
        [(cid,) for path, cid in current_of.items() if final_current.get(path, cid) != cid],
    )
    conn.executemany(
        "UPDATE photos SET current = 1 WHERE id = ?",
        [(i,) for p, i in final_current.items() if i not in inserts and current_of.get(p) != i],
    )
    conn.executemany(
        "UPDATE photos SET folder = ?, size = ?, mtime_ns = ? WHERE id = ?",
        [(r.folder, r.size, r.mtime_ns, r.id) for r in refreshed.values()],
    )
    conn.executemany(
        _INSERT,
        [_encode(r, final_current[r.path] == r.id, now) for r in inserts.values()],
    )
    return result


def _read_note(fd: int) -> dict[str, Any]:
    """The holder's note; it may be mid-write for a moment after the holder took the lock."""
    for _ in range(20):
        try:
            note = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            note = None
        if isinstance(note, dict):
            return note
        time.sleep(0.01)
    return {}


def _busy_message(path: str, note: Mapping[str, Any]) -> str:
    pid, host = note.get("pid", "?"), note.get("host", "?")
    holder = str(note.get("holder", ""))
    who = holder if f"pid {pid}" in holder else f"pid {pid} on host {host}: {holder}".rstrip(": ")
    since = note.get("since", "an unknown time")
    return f"ledger {path} is in use by {who} since {since}; wait for it to finish or stop it"
