"""The PostgreSQL ledger's claims and run lock: which run works on which photo, which collect
downloads which photo's results, and a session lock (see postgres.py for the whole)."""

from __future__ import annotations

__all__ = ["PostgresClaims"]

import json
import os
import socket

import psycopg

from pipeline.bootclock import owner_alive
from pipeline.errors import ClaimLost, LedgerBusy, LedgerError, LedgerUnreachable
from pipeline.ledger import after_order
from pipeline.ledger import postgres_sql as q
from pipeline.ledger import statements as S
from pipeline.ledger.fencing import claim_lost_message
from pipeline.ledger.postgres_base import PostgresBase, first_line
from pipeline.ledger.postgres_schema import LOCK_RUN
from pipeline.ledger.sqlite_rows import now_text

DATABASE_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"  # Unix seconds


class PostgresClaims(PostgresBase):
    """Claims with leases on the database's clock, and a session advisory lock for collect."""

    def close(self) -> None:
        self.release_run_lock()
        super().close()

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
        the next calls need no round trip. Leases run on the database's clock. Each photo
        taken anew (from another run, or after this run's own claim lapsed) has its fencing
        token incremented (see SqliteLedger.claim)."""
        owner = self.owner
        if owner is None:
            return True
        if photo_id in self._claimed:
            self._claimed.discard(photo_id)
            return True

        def body(c: q.Conn) -> bool:
            free = "(claimed_by IS NULL OR claimed_by = %s OR claim_until < %s)"
            clock = c.execute(DATABASE_NOW).fetchone()
            assert clock is not None
            now = float(clock[0])
            this = c.execute(
                "SELECT id, folder, path FROM photos "
                f"WHERE id = %s AND {free} FOR UPDATE SKIP LOCKED",
                (photo_id, owner, now),
            ).fetchone()
            taken = {photo_id} if this is not None else set()
            if this is not None and self.claim_batch > 1:
                # Only photos of the same directory, which this run is going through: a
                # folder's name is the manifest's, and another manifest's folder of that name
                # (another listing) is another run's work. Claimed here, its photos were
                # skipped by their own run as held, and never ordered that night.
                directory = str(this[2]).rsplit("/", 1)[0] + "/"
                taken |= {
                    int(r[0])
                    for r in c.execute(
                        "SELECT id FROM photos WHERE folder = %s AND id > %s AND current = 1 "
                        f"AND state IN ('pending', 'uploaded', 'submitting') AND {free} "
                        "AND left(path, %s) = %s AND strpos(substr(path, %s), '/') = 0 "
                        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (
                            this[1],
                            photo_id,
                            owner,
                            now,
                            len(directory),
                            directory,
                            len(directory) + 1,
                            self.claim_batch - 1,
                        ),
                    )
                }
            if photo_id not in taken:
                # Held, or locked by another transaction this moment (then it is busy: no
                # waiting on rows, so no deadlock between machines).
                found = c.execute(
                    "SELECT claimed_by, claim_until FROM photos WHERE id = %s "
                    "FOR UPDATE SKIP LOCKED",
                    (photo_id,),
                ).fetchone()
                if found is None:
                    return False
                holder, until = found
                lapsed = holder is None or holder == owner or until is None or until < now
                if not lapsed and owner_alive(str(holder)):
                    return False  # another live run has it
                taken.add(photo_id)
            fences = c.execute(
                "UPDATE photos SET claim_fence = claim_fence + CASE WHEN claimed_by = %s "
                "AND claim_until > %s THEN 0 ELSE 1 END, claimed_by = %s, claim_until = %s "
                "WHERE id = ANY(%s) RETURNING id, claim_fence",
                (owner, now, owner, now + self.lease_seconds, list(taken)),
            ).fetchall()
            self._fences.update((int(i), int(f)) for i, f in fences)
            self._claimed |= taken - {photo_id}
            return True

        return self._run(body)

    def fence(self, photo_id: int) -> int | None:
        """The fencing token of this run's latest claim on the photo (None: no claim)."""
        return self._fences.get(photo_id)

    def renew_claims(self) -> None:
        """Extend this run's live claims; a lapsed one stays lapsed (see SqliteLedger)."""
        if self.owner is not None:
            self._run(
                lambda c: c.execute(
                    "UPDATE photos SET claim_until = extract(epoch FROM clock_timestamp()) + %s "
                    "WHERE claimed_by = %s AND claim_until > extract(epoch FROM clock_timestamp())",
                    (self.lease_seconds, self.owner),
                )
            )

    def _claim_sql(
        self, fence: int | None, *, always: bool = False
    ) -> tuple[str, tuple[object, ...]]:
        """SQL that holds only under this run's live claim on the photo that ``fence`` came
        with, on the database's clock; as SqliteLedger._claim_sql."""
        if self.owner is None or (fence is None and not always):
            return "", ()
        sql = " AND claimed_by = %s AND claim_until > extract(epoch FROM clock_timestamp())"
        if fence is None:
            return sql, (self.owner,)
        return sql + " AND claim_fence = %s", (self.owner, fence)

    def _claim_lost(
        self, c: q.Conn, photo_id: int, fence: int | None, *, always: bool = False
    ) -> ClaimLost | None:
        """Why a guarded write matched nothing, if it is this run's claim on the photo."""
        if self.owner is None or (fence is None and not always):
            return None
        found = c.execute(
            "SELECT path, claimed_by, claim_until > extract(epoch FROM clock_timestamp()), "
            "claim_fence FROM photos WHERE id = %s",
            (photo_id,),
        ).fetchone()
        assert found is not None
        path, holder, live, token = found
        if holder == self.owner and live and fence in (None, token):
            return None
        message = claim_lost_message(path, self.path, photo_id, self.owner, holder, bool(live))
        return ClaimLost(message)

    def release_claims(self) -> None:
        self._fences.clear()
        self._claimed.clear()
        if self.owner is not None:
            self._run(lambda c: c.execute(q.pg(S.RELEASE_CLAIMS), (self.owner,)))

    # -- collect's claims on results (after_order.py) -----------------------------------------

    def claim_result(self, photo_id: int) -> bool:
        """Take the photo's results for this collect unless another live collect holds them;
        the lease runs on the database's clock."""
        owner = self.owner
        if owner is None:
            return True
        return self._run(
            lambda c: after_order.claim_result(
                q.SqliteStyle(c), photo_id, owner, _clock(c), self.lease_seconds
            )
        )

    def renew_result_claims(self) -> None:
        owner = self.owner
        if owner is not None:
            self._run(
                lambda c: after_order.renew_result_claims(
                    q.SqliteStyle(c), owner, _clock(c), self.lease_seconds
                )
            )

    def release_result_claims(self) -> None:
        owner = self.owner
        if owner is not None:
            self._run(lambda c: after_order.release_result_claims(q.SqliteStyle(c), owner))


def _clock(c: q.Conn) -> float:
    """The database's clock, in Unix seconds: every machine's leases count on it."""
    row = c.execute(DATABASE_NOW).fetchone()
    assert row is not None
    return float(row[0])
