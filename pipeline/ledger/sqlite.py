"""The ledger in one SQLite file: WAL, ``synchronous=FULL``, a sidecar ``.lock`` for the run lock.

Every change is one short transaction that is on disk when the call returns (or one group of
them, see groupcommit.py). Rows are encoded in sqlite_rows.py; what they mean is in records.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.bootclock import Stamp, boot_id, boot_seconds, owner_alive
from pipeline.errors import ClaimLost, LedgerBusy, LedgerError, NotEligible, SubmitRefused
from pipeline.filenames import shown, stored, unstored
from pipeline.ledger import after_order, serving
from pipeline.ledger import identity_sql as idsql
from pipeline.ledger import statements as S
from pipeline.ledger.fencing import claim_lost_message
from pipeline.ledger.migrations import migrate
from pipeline.ledger.records import (
    ChoiceEntry,
    Decision,
    FoundPhoto,
    KnownFile,
    LastPost,
    PhotoRow,
    PostTimes,
    Review,
    RunRecord,
    State,
    WindowFull,
    WindowRule,
)
from pipeline.ledger.serving import UpscaleRow
from pipeline.ledger.sqlite_file import make_ledger_file, not_a_database, refuse_empty
from pipeline.ledger.sqlite_found import adopt, record_found, unpaid_originals
from pipeline.ledger.sqlite_import import import_rows
from pipeline.ledger.sqlite_rows import (
    COLUMNS,
    INSERT,
    STATES,
    encode,
    error_text,
    now_text,
    row_of,
)
from pipeline.ledger.sqlite_window import answer_post, cap_future_posts, window_wait
from pipeline.ledger.window_log import WindowLog

__all__ = ["SqliteLedger"]


_BUSY_TIMEOUT_MS = 5000
_DB_ERRORS = (sqlite3.Error, OSError)  # what becomes a LedgerError


class SqliteLedger:
    """The ledger in one SQLite file, with a sidecar ``.lock`` file for the run lock."""

    def __init__(self, path: Path, *, init: bool = False) -> None:
        """Open the ledger at ``path``, creating it only where no file exists; ``init``
        (`aihd ledger init`): an empty file there may be made a ledger too."""
        self.path = str(path)
        self._lock_fd: int | None = None
        self.owner: str | None = None  # the run whose claims this handle takes (see claim)
        self.lease_seconds = 60.0
        self._fences: dict[int, int] = {}  # photo -> the fencing token of this run's claim
        self._mutex = threading.RLock()  # one transaction at a time if threads share the handle
        self._depth = 0
        # The account's recent order POSTs as this handle has read them (window_log.py), and
        # whether the open transaction wrote any: if it rolls back, the log forgets them.
        self._window_log = WindowLog()
        self._posts_written = False
        # The context managers of atomic() and grouped(): their state is the handle's.
        self._transaction = _Transaction(self)
        self._group = _Group(self)
        if path.is_dir():
            raise LedgerError(f"cannot open ledger {path}: it is a folder; name a file instead")
        with self._guard("open"):
            real = Path(os.path.realpath(path))  # a symlink's target is where the file is
            if not real.exists():
                make_ledger_file(real, _BUSY_TIMEOUT_MS / 1000)
            elif not init:
                refuse_empty(real)
            self._conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        try:
            with self._guard("open"):
                self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                try:
                    migrate(self._conn, self.path, new=init)
                except sqlite3.DatabaseError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_NOTADB:
                        raise
                    raise not_a_database(path, exc) from exc
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
        """The one place sqlite3 and file errors become a LedgerError (``_error`` words it)."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise self._error(action, exc) from exc

    def _error(self, action: str, exc: BaseException) -> LedgerError:
        return LedgerError(
            f"cannot {action} ledger {self.path}: {exc}; check the path is writable "
            "and is an aihd ledger, not a file of another tool"
        )

    def atomic(self) -> _Transaction:
        """One write transaction, committed (and fsynced) on exit; nested calls join it."""
        return self._transaction

    def grouped(self) -> _Group:
        """Writes made inside share one transaction and one commit (see groupcommit.py)."""
        return self._group

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._mutex:
            try:
                return self._conn.execute(sql, params).fetchall()
            except (sqlite3.Error, OSError) as exc:
                raise self._error("read", exc) from exc

    def _end(self, *, committing: bool) -> None:
        """End the outermost transaction: COMMIT, or ROLLBACK after an error."""
        written, self._posts_written = self._posts_written, False
        if committing:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._window_log.forget()
                raise
            return
        if written:
            self._window_log.forget()  # it may hold rows, or answers, that are not there now
        # Some errors (a full disk) have already rolled back; do not mask them.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

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
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "holder": holder,
            "since": now_text(),
        }
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
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (shown(command), now_text())
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, outcome: str, summary: Mapping[str, object]) -> None:
        with self.atomic() as conn:
            conn.execute(
                S.FINISH_RUN,
                (now_text(), outcome, json.dumps(dict(summary), default=str), run_id),
            )

    def last_run(self) -> RunRecord | None:
        rows = self._read(S.LAST_RUN)
        if not rows:
            return None
        r = rows[0]
        return RunRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))

    # -- finding photos -----------------------------------------------------------------------

    def cached_hashes(self) -> dict[str, tuple[int, int, str]]:
        rows = self._read(S.CACHED_HASHES)
        return {unstored(r[0]): (r[1], r[2], r[3]) for r in rows}

    def known_files(self, paths: Sequence[str]) -> dict[str, KnownFile]:
        """These photos' file facts and states, if current, in one query, for a fast re-run."""
        rows = self._read(
            "SELECT path, size, mtime_ns, sha256, identity, state, id FROM photos "
            "WHERE current = 1 AND sha256 != '' AND path IN (SELECT value FROM json_each(?))",
            (json.dumps([stored(p) for p in paths]),),
        )
        return {unstored(r[0]): KnownFile(r[1], r[2], r[3], r[4], STATES[r[5]], r[6]) for r in rows}

    def record_found(self, found: Sequence[FoundPhoto]) -> list[PhotoRow]:
        with self.atomic() as conn:
            return record_found(conn, found, now_text())

    def unpaid_originals(self, copy_ids: Sequence[int]) -> list[tuple[int, int, str, bool]]:
        """For these copies, their originals that were never charged (see ``adopt_orphans``)."""
        with self.atomic() as conn:
            return unpaid_originals(conn, copy_ids)

    def adopt_orphans(self, copy_ids: Sequence[int], missing: Set[str]) -> list[PhotoRow]:
        """Copies whose unpaid original is gone take its place and are ordered themselves.

        Gone: its file is in ``missing`` (the caller looked), it now holds other content (not
        current), or it failed. Without this, a photo renamed after a stopped run stays a
        "duplicate" of its old, missing path, and is never ordered: a copy counts as done only
        when its original is paid.
        """
        adopted: list[PhotoRow] = []
        now = now_text()
        with self.atomic() as conn:
            taken: set[int] = set()
            for copy_id, original_id, path, stands in unpaid_originals(conn, copy_ids):
                gone = path in missing
                if original_id in taken or (stands and not gone):
                    continue
                taken.add(original_id)
                adopt(conn, copy_id, original_id, gone, now)
                adopted.append(self._one(conn, "id = ?", (copy_id,)))
        return adopted

    def record_broken(
        self, path: str, folder: str, size: int, mtime_ns: int, reason: str, manifest: str = ""
    ) -> PhotoRow:
        # Broken files are not hashed: size and mtime stand in for content in the identity.
        identity = f"broken:{size}:{mtime_ns}"
        now = now_text()
        key = stored(path)
        with self.atomic() as conn:
            conn.execute(S.NOT_CURRENT, (key, identity))
            done = conn.execute(
                "UPDATE photos SET state = 'failed', error = ?, retryable = 0, current = 1, "
                "folder = ?, updated_at = ? WHERE path = ? AND identity = ?",
                (error_text(reason), stored(folder), now, key, identity),
            )
            if not done.rowcount:
                (next_id,) = conn.execute(S.NEXT_PHOTO_ID).fetchone()
                row = PhotoRow(
                    next_id, path, folder, "", size, mtime_ns, "", "", (), identity, State.FAILED,
                    None, None, None, None, (), (), 0, reason, False, None, now, False,
                )  # fmt: skip
                conn.execute(INSERT, encode(row, True, now, manifest))
            return self._one(conn, "path = ? AND identity = ?", (key, identity))

    # -- reading ------------------------------------------------------------------------------

    def photos(
        self,
        states: Iterable[State] | None = None,
        *,
        current_only: bool = True,
        scope: Sequence[str] | None = None,
    ) -> list[PhotoRow]:
        """Rows in these states; ``scope``: only photos in these folders (or below them)."""
        where: list[str] = ["1"]
        params: list[object] = []
        if current_only:
            where.append("current = 1")
        if states is not None:
            wanted = [State(s).value for s in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        if scope is not None:  # last: the dearest test, made only of rows the others kept
            clause, scoped = _scope(scope)
            where.append(clause)
            params.extend(scoped)
        return [row_of(r) for r in self._read(S.photos_sql(" AND ".join(where)), params)]

    def get(self, photo_id: int) -> PhotoRow:
        rows = self._read(S.PHOTO_BY_ID, (photo_id,))
        if not rows:
            raise LedgerError(f"ledger {self.path} has no photo with id {photo_id}")
        return row_of(rows[0])

    def counts(self, scope: Sequence[str] | None = None) -> dict[State, int]:
        """Current photos per state; ``scope``: only those in these folders (or below)."""
        clause, params = _scope(scope) if scope is not None else ("1", [])
        counts = dict.fromkeys(State, 0)
        for state, n in self._read(S.counts_sql(clause), params):
            counts[State(state)] = n
        return counts

    def charged_counts(self, scope: Sequence[str] | None = None) -> tuple[int, int]:
        """(photos the API charged, of which failed: their results are retried by collect)."""
        clause, params = _scope(scope) if scope is not None else ("1", [])
        ((charged, failed),) = self._read(
            "SELECT count(*), coalesce(sum(state = 'failed'), 0) FROM photos "
            f"WHERE charged = 1 AND {clause}",
            params,
        )
        return int(charged), int(failed)

    def counts_by_folder(self, scope: Sequence[str] | None = None) -> dict[str, dict[State, int]]:
        clause, params = _scope(scope) if scope is not None else ("1", [])
        by_folder: dict[str, dict[State, int]] = {}
        for folder, state, n in self._read(S.counts_by_folder_sql(clause), params):
            by_folder.setdefault(unstored(folder), dict.fromkeys(State, 0))[State(state)] = n
        return by_folder

    # -- ignored paths and catalog spellings (`aihd ignore`, export) --------------------------

    def ignore_paths(self, paths: Sequence[str], reason: str) -> int:
        """Leave these paths out of every run from now on; returns how many were new."""
        with self.atomic() as conn:
            cur = conn.executemany(
                "INSERT OR IGNORE INTO ignored (path, ignored_at, reason) VALUES (?, ?, ?)",
                [(stored(p), now_text(), shown(reason)) for p in paths],
            )
            return cur.rowcount

    def ignored_paths(self) -> set[str]:
        return {unstored(path) for (path,) in self._read(S.IGNORED_PATHS)}

    def ignore_contents(self, photos: Sequence[tuple[str, str]], reason: str) -> int:
        """Leave these contents (sha256, and the path it was named by) out of every run,
        wherever they are found, renamed or copied; returns how many were new."""
        with self.atomic() as conn:
            cur = conn.executemany(
                idsql.IGNORE_CONTENT,
                [(sha, stored(path), now_text(), shown(reason)) for sha, path in photos],
            )
            return cur.rowcount

    def ignored_contents(self) -> set[str]:
        return {sha for (sha,) in self._read(idsql.SELECT_IGNORED_CONTENT)}

    def catalog_choices(self) -> list[ChoiceEntry]:
        """Every catalog entry the ledger's identities name, with its latest spellings."""
        return idsql.choice_rows(self._read(idsql.SELECT_CHOICES))

    def keep_catalog_choices(self, entries: Sequence[ChoiceEntry]) -> None:
        """Record new entries, and the latest spellings of known ones (by kind, scope, key)."""
        with self.atomic() as conn:
            conn.executemany(idsql.UPSERT_CHOICE, idsql.choice_params(entries, now_text()))

    def remember_titles(self, titles: Iterable[str]) -> None:
        """Keep each enhancement title as the catalog writes it, keyed by its casefolded form."""
        with self.atomic() as conn:
            conn.executemany(S.REMEMBER_TITLE, [(t.casefold(), t) for t in titles])

    def titles(self) -> dict[str, str]:
        return dict(self._read(S.TITLES))

    # -- the v3 API's listing projects ----------------------------------------------------------

    def v3_project(self, account: str, address: str) -> str | None:
        """The id of the account's v3 project for ``address`` (any case), if one was made."""
        rows = self._read(S.V3_PROJECT, (account, address.strip().casefold()))
        return str(rows[0][0]) if rows else None

    def save_v3_project(self, account: str, address: str, project_id: str) -> None:
        """Keep the account's v3 project for ``address``; the first one kept stays."""
        with self.atomic() as conn:
            conn.execute(
                S.SAVE_V3_PROJECT, (account, address.strip().casefold(), project_id, now_text())
            )

    def replace_v3_project(self, account: str, address: str, gone: str, project_id: str) -> str:
        """``project_id`` takes the place of ``gone`` (deleted on the server), unless another
        run replaced it first; returns the id kept."""
        key = address.strip().casefold()
        with self.atomic() as conn:
            conn.execute(S.REPLACE_V3_PROJECT, (account, key, project_id, now_text(), gone))
            (kept,) = conn.execute(S.V3_PROJECT, (account, key)).fetchone()
            return str(kept)

    # -- review -------------------------------------------------------------------------------

    def record_reviews(
        self, photo_ids: Sequence[int], decision: Decision, source: str, reason: str | None = None
    ) -> int:
        """Record ``decision`` (and why) on each completed photo, the latest replacing the last;
        return how many were recorded."""
        decided_at = now_text()
        value = Decision(decision).value
        with self.atomic() as conn:
            done = conn.executemany(
                S.RECORD_REVIEW,
                [(value, decided_at, shown(source), error_text(reason), i) for i in photo_ids],
            )
            return done.rowcount

    def clear_reviews(self, photo_ids: Sequence[int]) -> int:
        """Take back the decisions on these photos (undecided again); return how many."""
        with self.atomic() as conn:
            done = conn.execute(S.CLEAR_REVIEWS, (json.dumps(list(photo_ids)),))
            return done.rowcount

    def reviews(self) -> dict[int, Review]:
        rows = self._read(S.REVIEWS)
        return {r[0]: Review(r[0], Decision(r[1]), r[2], r[3], r[4]) for r in rows}

    # -- state changes ------------------------------------------------------------------------

    def _one(self, conn: sqlite3.Connection, where: str, params: Sequence[object]) -> PhotoRow:
        r = conn.execute(f"SELECT {COLUMNS} FROM photos WHERE {where}", params).fetchone()
        if r is None:
            raise LedgerError(f"ledger {self.path} has no photo where {where} {tuple(params)}")
        return row_of(r)

    def _mark(
        self,
        photo_id: int,
        sets: str,
        params: Sequence[object],
        *,
        only_if: str = "",
        only_if_params: Sequence[object] = (),
        conn: sqlite3.Connection | None = None,
    ) -> PhotoRow:
        """One UPDATE that returns the row (RETURNING: a run makes three of these per photo);
        ``conn``: in the caller's transaction, which it holds."""
        if conn is None:
            with self.atomic() as conn:
                return self._mark(photo_id, sets, params, only_if=only_if,
                                  only_if_params=only_if_params, conn=conn)  # fmt: skip
        found = conn.execute(
            S.mark_sql(sets, only_if), (*params, now_text(), photo_id, *only_if_params)
        ).fetchone()
        if found is None:
            self._one(conn, "id = ?", (photo_id,))  # raises for an unknown id
            raise NotEligible
        return row_of(found)

    def _claim_sql(
        self, fence: int | None, *, always: bool = False
    ) -> tuple[str, tuple[object, ...]]:
        """SQL that holds only under this run's live claim on the photo that ``fence`` came
        with; none without a fence (a write of collect, a command, a test) unless ``always``
        (an intent: only the holder of a live claim ever records one)."""
        if self.owner is None or (fence is None and not always):
            return "", ()
        if fence is None:
            return " AND claimed_by = ? AND claim_until > ?", (self.owner, time.time())
        return (
            " AND claimed_by = ? AND claim_until > ? AND claim_fence = ?",
            (self.owner, time.time(), fence),
        )

    def _claim_lost(
        self, conn: sqlite3.Connection, photo_id: int, fence: int | None, *, always: bool = False
    ) -> ClaimLost | None:
        """Why a guarded write matched nothing, if it is this run's claim on the photo."""
        if self.owner is None or (fence is None and not always):
            return None
        (path, holder, until, token) = conn.execute(
            "SELECT path, claimed_by, claim_until, claim_fence FROM photos WHERE id = ?",
            (photo_id,),
        ).fetchone()
        live = until is not None and until > time.time()
        if holder == self.owner and live and fence in (None, token):
            return None
        return ClaimLost(claim_lost_message(path, self.path, photo_id, self.owner, holder, live))

    def mark_uploaded(
        self, photo_id: int, order_id: str, *, refused: bool = False, fence: int | None = None
    ) -> PhotoRow:
        """Uploaded, not charged; ``refused``: an order POST was answered with a refusal (that
        answer is recorded even when the claim was lost meanwhile: ClaimLost after it)."""
        lost: ClaimLost | None = None
        with self.atomic() as conn:
            if refused:
                self._posts_written = True
                answer_post(conn, self._window_log, photo_id, "refused")
            claim, claim_params = self._claim_sql(fence)
            try:
                return self._mark(
                    photo_id,
                    S.TO_UPLOADED,
                    (order_id,),
                    only_if=S.UNCHARGED + claim,
                    only_if_params=claim_params,
                    conn=conn,
                )
            except NotEligible:
                lost = self._claim_lost(conn, photo_id, fence)
                if lost is None:
                    raise
        raise lost

    def mark_submitting(
        self,
        photo_id: int,
        order_id: str | None = None,
        *,
        window: WindowRule | None = None,
        key_fingerprint: str = "",
        fence: int | None = None,
        send_within: float = 0.0,
    ) -> PhotoRow:
        """Intent before spending; ``order_id`` records a fresh upload in the same commit.

        Only the holder of a live claim records it (with ``fence``: the claim that token came
        with), in this same transaction: ClaimLost otherwise, and nothing may be sent.
        ``send_within``: the sender sends within this many seconds of the intent, or never
        (see LastPost); settling counts from then."""
        # The last guard before money is spent: only an uploaded, never-duplicate photo.
        # A charged photo is never submitted again (only `aihd reorder` clears the mark).
        params: tuple[object, ...] = ()
        if order_id is None:
            sets = S.TO_SUBMITTING
            only_if = S.UPLOADED_UNCHARGED
        else:
            sets = S.TO_SUBMITTING_UPLOADED
            params = (order_id,)
            only_if = S.UNSENT_UNCHARGED
        stamp = Stamp.now()
        with self.atomic() as conn:
            if window is not None and (
                wait := window_wait(
                    conn, self._window_log, window, stamp.boot, stamp.seconds, time.time()
                )
            ):
                raise WindowFull(wait)
            # Only the run holding the photo's live claim may spend on it: a run paused past
            # its lease, or whose photo another run took over, sends nothing.
            claim, claim_params = self._claim_sql(fence, always=True)
            try:
                row = self._mark(
                    photo_id,
                    sets,
                    params,
                    only_if=only_if + claim,
                    only_if_params=claim_params,
                    conn=conn,
                )
            except NotEligible:
                if (lost := self._claim_lost(conn, photo_id, fence, always=True)) is not None:
                    raise lost from None
                row = self.get(photo_id)
                paid = ", and it was charged already" if row.charged else ""
                (holder,) = conn.execute(S.CLAIM_HOLDER, (photo_id,)).fetchone()
                if self.owner is not None and holder != self.owner:
                    paid += f", and the run {holder or 'that claimed it'} holds it now"
                raise SubmitRefused(
                    f"refusing to submit {row.path}: it is {row.state.value}, not uploaded"
                    f"{paid} (ledger {self.path}, photo {photo_id})"
                ) from None
            self._posts_written = True
            conn.execute(
                S.RECORD_INTENT,
                (photo_id, row.order_id, stamp.boot, stamp.seconds, time.time(), key_fingerprint,
                 "" if window is None else window.account, send_within),
            )  # fmt: skip
            return row

    def mark_submitted(
        self, photo_id: int, image_id: str | None, eta: int | None, *, answered: bool = False
    ) -> PhotoRow:
        """Charged: by an answer to our POST (``answered``), or as the order's details show.

        Its claim ends here: a charged photo is never ordered again (``mark_submitting``
        refuses it), so no run need be kept off it, and the run's claims that are renewed
        stay those of the photos it is still working on, not all it has done."""
        with self.atomic() as conn:
            if answered:
                self._posts_written = True
                answer_post(conn, self._window_log, photo_id, "accepted")
            row = self._mark(
                photo_id,
                S.TO_SUBMITTED,
                (image_id, eta, now_text()),
                conn=conn,
            )
        self._fences.pop(photo_id, None)  # its claim ended: kept no longer (a run of 100,000)
        return row

    def mark_lost(self, photo_id: int, reason: str = "") -> None:
        """The answer to the photo's order POST was lost (a 5xx, a reset, a timeout): it may
        have been charged. The photo is ``unknown`` until its order's details settle it."""
        with self.atomic() as conn:
            self._posts_written = True
            answer_post(conn, self._window_log, photo_id, "lost")
            conn.execute(S.MARK_LOST, (error_text(reason or None), now_text(), photo_id))

    def mark_unsent(self, photo_id: int) -> None:
        """The photo's latest intent was never sent (it was no longer fresh when its turn
        came): the order window forgets it. The photo stays ``submitting``, to be settled."""
        with self.atomic() as conn:
            self._posts_written = True
            answer_post(conn, self._window_log, photo_id, "unsent")

    def last_post(self, photo_id: int) -> LastPost | None:
        """The photo's latest order POST, and the latest moment it may have left."""
        rows = self._read(S.LAST_POST, (photo_id,))
        return LastPost(rows[0][0], Stamp(rows[0][1], rows[0][2])) if rows else None

    def mark_not_received(
        self, photo_id: int, post_id: int | None, *, fence: int | None = None
    ) -> PhotoRow:
        """The order's details said "not received" for the whole settle time after POST
        ``post_id`` (the photo's latest): uploaded again, free to be ordered. SubmitRefused
        (ClaimLost) when the photo moved on meanwhile, or this run's claim did."""
        with self.atomic() as conn:
            claim, claim_params = self._claim_sql(fence)
            try:
                return self._mark(
                    photo_id,
                    S.TO_UPLOADED_AGAIN,
                    (),
                    only_if=S.UNSETTLED_LATEST_POST + claim,
                    only_if_params=(post_id or 0, *claim_params),
                )
            except NotEligible:
                if (lost := self._claim_lost(conn, photo_id, fence)) is not None:
                    raise lost from None
                row = self._one(conn, "id = ?", (photo_id,))
                raise SubmitRefused(
                    f"not settling {row.path}: it is {row.state.value} now, or was posted again "
                    f"(ledger {self.path}, photo {photo_id})"
                ) from None

    def mark_unknown(self, photo_id: int, reason: str) -> PhotoRow:
        """Its order's outcome stays unknown (the API does not know the order, or its details
        cannot be read): held, never ordered again by itself. A photo that moved on (charged,
        or another run's) is left as it is."""
        with self.atomic() as conn:
            try:
                return self._mark(
                    photo_id,
                    S.TO_UNKNOWN,
                    (error_text(reason),),
                    only_if=S.UNSETTLED,
                )
            except NotEligible:
                return self._one(conn, "id = ?", (photo_id,))

    def cap_future_posts(self) -> int:
        """Order times of another machine or boot ahead of this clock become now (a count)."""
        with self.atomic() as conn:
            return cap_future_posts(conn, self._window_log, Stamp.now(), time.time())

    def window_wait(self, rule: WindowRule) -> float:
        """Seconds until the account's window has room (read only: ``mark_submitting`` with
        the same rule is the check that counts, in the transaction that records the intent)."""
        with self._mutex:
            try:
                return window_wait(
                    self._conn, self._window_log, rule, boot_id(), boot_seconds(), time.time()
                )
            except (sqlite3.Error, OSError) as exc:
                raise self._error("read", exc) from exc

    def claim(self, photo_id: int) -> bool:
        """Take the photo for this run (``owner``) unless another live run holds it. Taking
        it anew (from another run, or after this run's own claim lapsed) increments its
        fencing token: a write made with an older token is refused (``fence``)."""
        return self.owner is None or self._claim(photo_id, "") is not None

    def claim_row(self, photo_id: int) -> PhotoRow | None:
        """``claim``, and the photo as it stands now that it is this run's (None: another
        live run holds it): the row comes back from the claim's own UPDATE, so a run's claim
        and read of a photo are one statement, not two."""
        if self.owner is None:
            return self.get(photo_id)
        taken = self._claim(photo_id, f", {COLUMNS}")
        return None if taken is None else row_of(taken[1:])

    def _claim(self, photo_id: int, returning: str) -> Sequence[Any] | None:
        """The claim's statement: the row's fencing token then ``returning``'s columns, or
        None when another live run holds the photo."""
        assert self.owner is not None
        now = time.time()
        owner, until = self.owner, now + self.lease_seconds
        with self.atomic() as conn:
            # Free, ours, or lapsed: taken in one statement (one per photo of a run). Taken
            # anew (not this run's live claim) its fencing token goes up: SET reads the row
            # as it was before the UPDATE.
            taken: Sequence[Any] | None = conn.execute(
                "UPDATE photos SET claimed_by = ?, claim_until = ?, claim_fence = claim_fence + "
                "CASE WHEN claimed_by = ? AND claim_until > ? THEN 0 ELSE 1 END WHERE id = ? "
                "AND (claimed_by IS NULL OR claimed_by = ? OR claim_until IS NULL "
                f"OR claim_until <= ?) RETURNING claim_fence{returning}",
                (owner, until, owner, now, photo_id, owner, now),
            ).fetchone()
            if taken is None:
                (holder,) = conn.execute(S.CLAIM_HOLDER, (photo_id,)).fetchone()
                if owner_alive(holder):
                    return None  # another live run holds it
                # Its run is gone (its lease had not run out): taken over, fenced anew.
                taken = conn.execute(
                    "UPDATE photos SET claimed_by = ?, claim_until = ?, "
                    f"claim_fence = claim_fence + 1 WHERE id = ? RETURNING claim_fence{returning}",
                    (owner, until, photo_id),
                ).fetchone()
            assert taken is not None
            self._fences[photo_id] = taken[0]
            return taken

    def fence(self, photo_id: int) -> int | None:
        """The fencing token of this run's latest claim on the photo (None: no claim)."""
        return self._fences.get(photo_id)

    def renew_claims(self) -> None:
        """Extend this run's live claims; a lapsed one stays lapsed (another run may hold it,
        or take it: this run's writes on it are refused until it claims it anew)."""
        if self.owner is not None:
            now = time.time()
            with self.atomic() as conn:
                conn.execute(
                    "UPDATE photos SET claim_until = ? WHERE claimed_by = ? AND claim_until > ?",
                    (now + self.lease_seconds, self.owner, now),
                )

    def release_claims(self) -> None:
        self._fences.clear()
        if self.owner is not None:
            with self.atomic() as conn:
                conn.execute(S.RELEASE_CLAIMS, (self.owner,))

    # -- after the order: collect's claims, deliver's files (after_order.py) -------------------

    def claim_result(self, photo_id: int) -> bool:
        """Take the photo's results for this collect (``owner``) unless another holds them."""
        if self.owner is None:
            return True
        with self.atomic() as conn:
            return after_order.claim_result(
                conn, photo_id, self.owner, time.time(), self.lease_seconds
            )

    def renew_result_claims(self) -> None:
        if self.owner is not None:
            with self.atomic() as conn:
                after_order.renew_result_claims(conn, self.owner, time.time(), self.lease_seconds)

    def release_result_claims(self) -> None:
        if self.owner is not None:
            with self.atomic() as conn:
                after_order.release_result_claims(conn, self.owner)

    def record_delivered(
        self, files: Sequence[tuple[str, str]], made_from: Mapping[str, str] | None = None
    ) -> None:
        with self.atomic() as conn:
            after_order.record_delivered(conn, files, now_text(), made_from)

    def delivered_made_from(self, hashes: Sequence[str]) -> dict[str, str]:
        with self._mutex, self._guard("read"):
            return after_order.delivered_made_from(self._conn, hashes)

    def delivered(self, hashes: Sequence[str]) -> set[str]:
        with self._mutex, self._guard("read"):
            return after_order.delivered(self._conn, hashes)

    def photo_folders(self) -> list[tuple[str, str, str]]:
        with self._mutex, self._guard("read"):
            return after_order.photo_folders(self._conn)

    def import_ledger(self, source: Path) -> int | None:
        """Copy another aihd ledger into this one; None when it was imported before."""
        key = stored(str(source.resolve()))
        if key == stored(str(Path(self.path).resolve())):
            raise LedgerError(f"{source} is this ledger: nothing to import")
        if not source.is_file():
            raise LedgerError(f"cannot import {source}: no such file")
        other = SqliteLedger(source)  # refuses another tool's file; migrates an older one
        try:
            with self.atomic() as conn:
                if conn.execute(S.IMPORT_DONE, (key,)).fetchone():
                    return None
                count = other.copy_rows_into(conn)
                conn.execute(S.IMPORT_RECORD, (key, now_text(), count))
                return count
        finally:
            other.close()

    def copy_rows_into(self, conn: sqlite3.Connection) -> int:
        """Copy this ledger's rows into ``conn``, another ledger's open write transaction (its
        ``import_ledger``); the photos copied."""
        with self._mutex, self._guard("read"):
            return import_rows(conn, self._conn)

    def recent_posts(self, within_seconds: float, account: str = "") -> list[PostTimes]:
        """The account's order POSTs whose intent is at most ``within_seconds`` old by the wall
        clock, or that were made on this boot within that time, refusals and intents never sent
        left out: the order window's history, for a run that starts right after another."""
        stamp = Stamp.now()
        rows = self._read(
            "SELECT boot, intent_clock, intent_wall, answer_clock, answer_wall FROM order_posts "
            "WHERE (outcome IS NULL OR outcome NOT IN ('refused', 'unsent')) "
            "AND (account = '' OR ? IN (account, '')) "
            "AND (intent_wall >= ? OR (boot = ? AND intent_clock >= ?))",
            (account, time.time() - within_seconds, stamp.boot, stamp.seconds - within_seconds),
        )
        return [PostTimes(*r) for r in rows]

    def reorder(self, photo_ids: Sequence[int]) -> list[PhotoRow]:
        """Clear the charged mark: these photos are ordered again (and paid again) next run.
        Their decisions go: the new result is another photo to look at."""
        with self.atomic() as conn:
            rows = conn.execute(S.REORDER, (now_text(), json.dumps(list(photo_ids)))).fetchall()
            reordered = [row_of(r) for r in rows]
            conn.execute(S.CLEAR_REVIEWS, (json.dumps([r.id for r in reordered]),))
            return reordered

    def set_output_paths(self, photo_id: int, output_paths: Sequence[str]) -> None:
        """Files collect wrote for a photo that keeps its state (a duplicate's copies)."""
        with self.atomic() as conn:
            conn.execute(S.OUTPUT_PATHS, (json.dumps(list(output_paths)), now_text(), photo_id))

    def mark_failed(
        self, photo_id: int, error: str, *, retryable: bool, fence: int | None = None
    ) -> PhotoRow:
        """Failed with a reason; with ``fence``, only under this run's live claim (ClaimLost)."""
        with self.atomic() as conn:
            claim, claim_params = self._claim_sql(fence)
            try:
                return self._mark(
                    photo_id,
                    S.TO_FAILED,
                    (error_text(error), int(retryable)),
                    only_if=claim,
                    only_if_params=claim_params,
                )
            except NotEligible:
                if (lost := self._claim_lost(conn, photo_id, fence)) is not None:
                    raise lost from None
                raise

    def mark_pending(self, photo_id: int, *, fence: int | None = None) -> PhotoRow:
        """Upload afresh (the API forgot the upload); never for a charged photo."""
        with self.atomic() as conn:
            claim, claim_params = self._claim_sql(fence)
            try:
                return self._mark(
                    photo_id,
                    S.TO_PENDING,
                    (),
                    only_if=S.UNCHARGED + claim,
                    only_if_params=claim_params,
                )
            except NotEligible:
                if (lost := self._claim_lost(conn, photo_id, fence)) is not None:
                    raise lost from None
        raise LedgerError(
            f"refusing to upload photo {photo_id} again: it was charged already "
            f"(ledger {self.path}); only the reorder command orders a charged photo again"
        )

    def mark_completed(
        self, photo_id: int, result_urls: Sequence[str], output_paths: Sequence[str]
    ) -> PhotoRow:
        return self._mark(
            photo_id,
            S.TO_COMPLETED,
            (json.dumps(list(result_urls)), json.dumps(list(output_paths))),
        )

    def reset_failed(self, *, include_permanent: bool) -> int:
        # A photo that failed while its order's outcome was unknown goes back to unknown, so
        # the runner asks the API what became of its order instead of paying again. A charged
        # photo (its result failed) is left to collect, which retries the result, never the
        # order. Broken files (no hash) are left: the next scan checks them afresh.
        with self.atomic() as conn:
            cur = conn.execute(S.RESET_FAILED, (now_text(), int(include_permanent)))
            return cur.rowcount

    # -- aihd serve (serving.py) ----------------------------------------------------------------

    def photo_by_order(self, order_id: str) -> PhotoRow | None:
        with self._mutex, self._guard("read"):
            found = serving.photo_by_order(self._conn, COLUMNS, order_id)
        return None if found is None else row_of(found)

    def release_claim(self, photo_id: int) -> None:
        """Let this run's claim on one photo go (a service keeps running past its work); its
        fence goes with it, so a later claim is a new one with a new token."""
        self._fences.pop(photo_id, None)
        if self.owner is not None:
            with self.atomic() as conn:
                conn.execute(S.RELEASE_CLAIM, (photo_id, self.owner))

    def wish_upscales(self, photo_ids: Sequence[int], source: str) -> int:
        with self.atomic() as conn:
            return serving.wish(conn, photo_ids, source, now_text())

    def upscale_work(self, scope: Sequence[str] | None = None) -> list[int]:
        with self._mutex, self._guard("read"):
            return serving.work(self._conn, serving.scope_sql(scope))

    def upscale_intents(self, photo_id: int, generated_ids: Sequence[str]) -> list[str]:
        with self.atomic() as conn:
            return serving.intents(conn, photo_id, generated_ids, now_text())

    def upscale_answered(self, generated_id: str, error: str | None) -> None:
        with self.atomic() as conn:
            serving.answered(conn, generated_id, error, now_text())

    def finish_upscale(
        self, generated_id: str, output_path: str | None, error: str | None = None
    ) -> bool:
        with self.atomic() as conn:
            return serving.finish(conn, generated_id, output_path, error, now_text())

    def upscale(self, generated_id: str) -> UpscaleRow | None:
        with self._mutex, self._guard("read"):
            return serving.one(self._conn, generated_id)

    def upscales(self, scope: Sequence[str] | None = None) -> list[UpscaleRow]:
        with self._mutex, self._guard("read"):
            return serving.every(self._conn, serving.scope_sql(scope))


def _scope(folders: Sequence[str]) -> tuple[str, list[object]]:
    """SQL that keeps photos in these folders or below them (exact, case-sensitive).

    One JSON list of the folders, not an OR per folder: SQLite refuses an expression over
    1,000 deep, and a manifest's glob of listings (aihd serve, aihd run) may match more.
    """
    if not folders:
        return "0", []
    # Each prefix in its stored form (filenames.py), a prefix of its photos' stored paths.
    prefixes = sorted({stored(folder.rstrip("/") + "/") for folder in folders})
    clause = (
        "EXISTS (SELECT 1 FROM json_each(?) WHERE substr(photos.path, 1, length(value)) = value)"
    )
    return clause, [json.dumps(prefixes)]


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


class _Transaction:
    """``with ledger.atomic() as conn``: one write transaction, committed on exit, rolled back
    on an error; nested ones join the outer one. A class, not a ``@contextmanager``: a run opens
    several per photo, and a generator's context manager cost more than their SQL."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: SqliteLedger) -> None:
        self._ledger = ledger

    def __enter__(self) -> sqlite3.Connection:
        ledger = self._ledger
        ledger._mutex.acquire()
        conn = ledger._conn
        try:
            if not ledger._depth:
                conn.execute("BEGIN IMMEDIATE")
            elif not conn.in_transaction:
                # An error inside this group (a full disk) rolled the whole transaction back:
                # writing on would commit each statement alone, outside the group.
                raise LedgerError(
                    f"cannot write ledger {ledger.path}: its transaction was rolled back"
                )
        except (sqlite3.Error, OSError) as exc:
            ledger._mutex.release()
            raise ledger._error("write", exc) from exc
        except BaseException:
            ledger._mutex.release()
            raise
        ledger._depth += 1
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ledger = self._ledger
        try:
            ledger._depth -= 1
            if not ledger._depth:
                ledger._end(committing=exc is None)
        except _DB_ERRORS as failed:
            raise ledger._error("write", failed) from failed
        finally:
            ledger._mutex.release()
        if exc is not None and isinstance(exc, _DB_ERRORS):
            raise ledger._error("write", exc) from exc


class _Group(_Transaction):
    """``with ledger.grouped()``: a transaction the writes inside join (groupcommit.py)."""

    __slots__ = ()

    def __enter__(self) -> None:  # type: ignore[override]  # yields nothing, as the protocol says
        super().__enter__()
