"""The ledger in PostgreSQL: one account's ledger shared by runs on several machines.

Same tables, states and rules as the SQLite store (sqlite.py); what the database adds:

- claims: ``claim`` takes the photo and, in the same transaction, the next open photos of its
  folder (a batch of 16, ``SELECT ... FOR UPDATE SKIP LOCKED`` on a partial index), with this
  run as owner (host, boot, pid, run) and a lease on the DATABASE's clock, renewed by the run;
  the batch's later photos need no round trip. A killed run's claims are taken over when the
  lease lapses (or at once when its pid is gone on this host); a copy of a photo seen under
  another machine's path takes an unpaid original's place only when no live claim holds it;
- the window: ``mark_submitting(window=...)`` counts the account's intents and answers of the
  last ``per_seconds`` on the database's clock (``clock_timestamp()``), under a transaction-
  scoped advisory lock for the account, inserts this order's intent and commits, in one short
  transaction: two machines never take the last slot both, and a machine's wrong clock does
  not matter;
- faults: every call is one transaction, or one savepoint of a group (``grouped()``: the
  writes of one event-loop turn, one COMMIT, see groupcommit.py). A lost connection is
  reconnected with backoff and the transaction made again from the start; a group's writes are
  made again in order, and if one does not come out as it first did (its COMMIT had in fact
  landed, or another machine changed its photo meanwhile) the whole group fails, none of its
  writes believed written. Nothing is taken as written until COMMIT answered, so no POST
  leaves before its intent is committed; an intent whose COMMIT was cut and had landed is
  refused when made again, so its POST is not sent and the order is reconciled with the API
  by the next run, never POSTed blind. While it retries, the process waits (the ledger's calls
  are synchronous). A database that stays away ``AIHD_LEDGER_RETRY_SECONDS`` (default 60)
  raises ``LedgerUnreachable`` (exit 7): the run stops, and what it committed stays.
  `aihd collect` takes no lock: it claims each photo's results (after_order.py, leases on
  the database's clock), so collects on several machines run at once and download once. The
  run lock, a session advisory lock on a connection of its own, is kept for callers that
  want one.

Driver: psycopg 3, its synchronous API, one connection per process (and no pool: one process
makes one ledger call at a time). The runner calls the ledger synchronously from its event loop
(through groupcommit.py), as it does SQLite; psycopg's async API and pool would need every
ledger call of the runner, collect and the commands made awaitable, a change across the code
for no gain here. Parts: postgres_base.py (connection, retries, groups), postgres_claims.py,
postgres_orders.py, postgres_sql.py, postgres_schema.py (migrations).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence, Set

from pipeline.errors import LedgerError
from pipeline.filenames import shown, stored, unstored
from pipeline.ledger import after_order, serving
from pipeline.ledger import identity_sql as idsql
from pipeline.ledger import postgres_sql as q
from pipeline.ledger import statements as S
from pipeline.ledger.postgres_base import INSERT
from pipeline.ledger.postgres_orders import PostgresOrders
from pipeline.ledger.postgres_schema import ADVISORY_LOCK, LOCK_FIND
from pipeline.ledger.records import (
    ChoiceEntry,
    Decision,
    FoundPhoto,
    KnownFile,
    PhotoRow,
    Review,
    RunRecord,
    State,
    WindowRule,
)
from pipeline.ledger.serving import UpscaleRow
from pipeline.ledger.sqlite_found import adopt, record_found
from pipeline.ledger.sqlite_rows import COLUMNS, STATES, encode, error_text, now_text, row_of
from pipeline.ledger.stores import is_url

__all__ = ["PostgresLedger", "is_url"]


class PostgresLedger(PostgresOrders):
    """The account's ledger in a PostgreSQL database, shared by runs on several machines."""

    def __repr__(self) -> str:
        return f"PostgresLedger({self.path!r})"

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, command: str) -> int:
        found = self._run(
            lambda c: c.execute(
                "INSERT INTO runs (command, started_at) VALUES (%s, %s) RETURNING id",
                (shown(command), now_text()),
            ).fetchone()
        )
        assert found is not None
        return int(found[0])

    def finish_run(self, run_id: int, outcome: str, summary: Mapping[str, object]) -> None:
        text = json.dumps(dict(summary), default=str)
        self._run(lambda c: c.execute(q.pg(S.FINISH_RUN), (now_text(), outcome, text, run_id)))

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
        rows = self._read(
            "SELECT path, size, mtime_ns, sha256, identity, state, id FROM photos "
            "WHERE current = 1 AND sha256 != '' AND path = ANY(%s)",
            ([stored(p) for p in paths],),
        )
        return {unstored(r[0]): KnownFile(r[1], r[2], r[3], r[4], STATES[r[5]], r[6]) for r in rows}

    def record_found(self, found: Sequence[FoundPhoto]) -> list[PhotoRow]:
        def body(c: q.Conn) -> list[PhotoRow]:
            c.execute(ADVISORY_LOCK, (LOCK_FIND,))
            return record_found(q.SqliteStyle(c), found, now_text())  # type: ignore[arg-type]

        return self._run(body)

    def unpaid_originals(self, copy_ids: Sequence[int]) -> list[tuple[int, int, str, bool]]:
        return self._run(lambda c: q.unpaid_originals(c, copy_ids, self.owner), transaction=False)

    def adopt_orphans(self, copy_ids: Sequence[int], missing: Set[str]) -> list[PhotoRow]:
        """As SqliteLedger.adopt_orphans: copies take the place of an unpaid original gone."""

        def body(c: q.Conn) -> list[PhotoRow]:
            c.execute(ADVISORY_LOCK, (LOCK_FIND,))
            adopted, taken, now = [], set(), now_text()
            for copy_id, original_id, path, stands in q.unpaid_originals(
                c, copy_ids, self.owner, lock=True
            ):
                if original_id in taken or (stands and path not in missing):
                    continue
                taken.add(original_id)
                adopt(q.SqliteStyle(c), copy_id, original_id, path in missing, now)  # type: ignore[arg-type]
                adopted.append(self._one(c, copy_id))
            return adopted

        return self._run(body)

    def record_broken(
        self, path: str, folder: str, size: int, mtime_ns: int, reason: str, manifest: str = ""
    ) -> PhotoRow:
        identity = f"broken:{size}:{mtime_ns}"
        key, reason = stored(path), shown(reason)

        def body(c: q.Conn) -> PhotoRow:
            now = now_text()
            c.execute(ADVISORY_LOCK, (LOCK_FIND,))
            c.execute(q.pg(S.NOT_CURRENT), (key, identity))
            done = c.execute(
                "UPDATE photos SET state = 'failed', error = %s, retryable = 0, current = 1, "
                "folder = %s, updated_at = %s WHERE path = %s AND identity = %s "
                f"RETURNING {COLUMNS}",
                (reason, stored(folder), now, key, identity),
            ).fetchone()
            if done is not None:
                return row_of(done)
            (next_id,) = c.execute(S.NEXT_PHOTO_ID).fetchone() or (1,)
            row = PhotoRow(
                next_id, path, folder, "", size, mtime_ns, "", "", (), identity, State.FAILED,
                None, None, None, None, (), (), 0, reason, False, None, now, False,
            )  # fmt: skip
            c.execute(INSERT, encode(row, True, now, manifest))
            return row

        return self._run(body)

    # -- reading ------------------------------------------------------------------------------

    def photos(
        self,
        states: Iterable[State] | None = None,
        *,
        current_only: bool = True,
        scope: Sequence[str] | None = None,
    ) -> list[PhotoRow]:
        clause, params = q.scope_clause(scope)
        where = [clause]
        if current_only:
            where.append("current = 1")
        if states is not None:
            where.append("state = ANY(%s)")
            params.append([State(s).value for s in states])
        return [row_of(r) for r in self._read(S.photos_sql(" AND ".join(where)), params)]

    def claim_row(self, photo_id: int) -> PhotoRow | None:
        """``claim``, and the photo as it stands now that it is this run's (None: another
        live run holds it); see SqliteLedger.claim_row."""
        return self.get(photo_id) if self.claim(photo_id) else None

    def get(self, photo_id: int) -> PhotoRow:
        rows = self._read(q.pg(S.PHOTO_BY_ID), (photo_id,))
        if not rows:
            raise LedgerError(f"ledger {self.path} has no photo with id {photo_id}")
        return row_of(rows[0])

    def counts(self, scope: Sequence[str] | None = None) -> dict[State, int]:
        clause, params = q.scope_clause(scope)
        counts = dict.fromkeys(State, 0)
        for state, n in self._read(S.counts_sql(clause), params):
            counts[State(state)] = n
        return counts

    def charged_counts(self, scope: Sequence[str] | None = None) -> tuple[int, int]:
        clause, params = q.scope_clause(scope)
        ((charged, failed),) = self._read(
            "SELECT count(*), count(*) FILTER (WHERE state = 'failed') FROM photos "
            f"WHERE charged = 1 AND {clause}",
            params,
        )
        return int(charged), int(failed)

    def counts_by_folder(self, scope: Sequence[str] | None = None) -> dict[str, dict[State, int]]:
        clause, params = q.scope_clause(scope)
        by_folder: dict[str, dict[State, int]] = {}
        for folder, state, n in self._read(S.counts_by_folder_sql(clause), params):
            by_folder.setdefault(unstored(folder), dict.fromkeys(State, 0))[State(state)] = n
        return by_folder

    def cap_future_posts(self) -> int:
        """Order times ahead of the database's clock become now (a count)."""
        return self._run(lambda c: q.cap_future_posts(c, self._window_log))

    def window_wait(self, rule: WindowRule) -> float:
        """Seconds until the account's window has room, on the database's clock (read only:
        ``mark_submitting`` with the same rule is the check that counts)."""
        return self._run(lambda c: q.window_wait(c, self._window_log, rule), transaction=False)

    # -- ignored paths and catalog spellings (`aihd ignore`, export) --------------------------

    def ignore_paths(self, paths: Sequence[str], reason: str) -> int:
        """Leave these paths out of every run from now on; returns how many were new."""
        stamp = now_text()

        def body(c: q.Conn) -> int:
            added = 0
            for path in paths:
                cur = c.execute(
                    "INSERT INTO ignored (path, ignored_at, reason) VALUES (%s, %s, %s) "
                    "ON CONFLICT (path) DO NOTHING",
                    (stored(path), stamp, shown(reason)),
                )
                added += cur.rowcount
            return added

        return self._run(body)

    def ignored_paths(self) -> set[str]:
        return {unstored(path) for (path,) in self._read(S.IGNORED_PATHS)}

    def ignore_contents(self, photos: Sequence[tuple[str, str]], reason: str) -> int:
        """As SqliteLedger.ignore_contents: these contents are left out wherever found."""
        stamp = now_text()

        def body(c: q.Conn) -> int:
            style = q.SqliteStyle(c)
            return sum(
                style.execute(
                    idsql.IGNORE_CONTENT, (sha, stored(path), stamp, shown(reason))
                ).rowcount
                for sha, path in photos
            )

        return self._run(body)

    def ignored_contents(self) -> set[str]:
        return {sha for (sha,) in self._read(idsql.SELECT_IGNORED_CONTENT)}

    def catalog_choices(self) -> list[ChoiceEntry]:
        return idsql.choice_rows(self._read(idsql.SELECT_CHOICES))

    def keep_catalog_choices(self, entries: Sequence[ChoiceEntry]) -> None:
        params = idsql.choice_params(entries, now_text())
        self._run(lambda c: q.SqliteStyle(c).executemany(idsql.UPSERT_CHOICE, params))

    def remember_titles(self, titles: Iterable[str]) -> None:
        """Keep each enhancement title as the catalog writes it, keyed by its casefolded form."""
        wanted = [(t.casefold(), t) for t in titles]

        def body(c: q.Conn) -> None:
            for folded, title in wanted:
                c.execute(q.pg(S.REMEMBER_TITLE), (folded, title))

        self._run(body)

    def titles(self) -> dict[str, str]:
        return dict(self._read(S.TITLES))

    # -- the v3 API's listing projects (one per account and address) ---------------------------

    def v3_project(self, account: str, address: str) -> str | None:
        """The id of the account's v3 project for ``address`` (any case), if one was made."""
        rows = self._read(q.pg(S.V3_PROJECT), (account, address.strip().casefold()))
        return str(rows[0][0]) if rows else None

    def save_v3_project(self, account: str, address: str, project_id: str) -> None:
        """Keep the account's v3 project for ``address``; the first one kept stays (two
        machines creating one at once: the second's project is left empty, never used)."""
        self._run(
            lambda c: c.execute(
                q.pg(S.SAVE_V3_PROJECT),
                (account, address.strip().casefold(), project_id, now_text()),
            )
        )

    def replace_v3_project(self, account: str, address: str, gone: str, project_id: str) -> str:
        """``project_id`` takes the place of ``gone`` (deleted on the server), unless another
        run replaced it first; returns the id kept."""
        key = address.strip().casefold()

        def body(c: q.Conn) -> str:
            c.execute(q.pg(S.REPLACE_V3_PROJECT), (account, key, project_id, now_text(), gone))
            found = c.execute(q.pg(S.V3_PROJECT), (account, key)).fetchone()
            assert found is not None
            return str(found[0])

        return self._run(body)

    # -- deliver's files, and where photos are (after_order.py) --------------------------------

    def record_delivered(
        self, files: Sequence[tuple[str, str]], made_from: Mapping[str, str] | None = None
    ) -> None:
        stamp = now_text()
        self._run(lambda c: after_order.record_delivered(q.SqliteStyle(c), files, stamp, made_from))

    def delivered_made_from(self, hashes: Sequence[str]) -> dict[str, str]:
        return self._run(
            lambda c: after_order.delivered_made_from(q.SqliteStyle(c), hashes),
            transaction=False,
        )

    def delivered(self, hashes: Sequence[str]) -> set[str]:
        return self._run(
            lambda c: after_order.delivered(q.SqliteStyle(c), hashes), transaction=False
        )

    def photo_folders(self) -> list[tuple[str, str, str]]:
        return self._run(lambda c: after_order.photo_folders(q.SqliteStyle(c)), transaction=False)

    # -- review -------------------------------------------------------------------------------

    def record_reviews(
        self, photo_ids: Sequence[int], decision: Decision, source: str, reason: str | None = None
    ) -> int:
        """Record ``decision`` (and why) on each completed photo, the latest replacing the last;
        return how many were recorded."""
        decided_at = now_text()
        value = Decision(decision).value

        def body(c: q.Conn) -> int:
            done = 0
            for photo_id in photo_ids:
                cur = c.execute(
                    q.pg(S.RECORD_REVIEW),
                    (value, decided_at, shown(source), error_text(reason), photo_id),
                )
                done += cur.rowcount
            return done

        return self._run(body)

    def clear_reviews(self, photo_ids: Sequence[int]) -> int:
        """Take back the decisions on these photos (undecided again); return how many."""
        return self._run(
            lambda c: (
                q.SqliteStyle(c).execute(S.CLEAR_REVIEWS, (json.dumps(list(photo_ids)),)).rowcount
            )
        )

    def reviews(self) -> dict[int, Review]:
        rows = self._read(S.REVIEWS)
        return {r[0]: Review(r[0], Decision(r[1]), r[2], r[3], r[4]) for r in rows}

    # -- aihd serve (serving.py, in SQLite's SQL through SqliteStyle) ---------------------------

    def photo_by_order(self, order_id: str) -> PhotoRow | None:
        found = self._run(lambda c: serving.photo_by_order(q.SqliteStyle(c), COLUMNS, order_id))
        return None if found is None else row_of(found)

    def release_claim(self, photo_id: int) -> None:
        """Let this run's claim on one photo go (a service keeps running past its work); its
        fence goes with it, so a later claim is a new one with a new token."""
        self._claimed.discard(photo_id)
        self._fences.pop(photo_id, None)
        if self.owner is not None:
            self._run(lambda c: c.execute(q.pg(S.RELEASE_CLAIM), (photo_id, self.owner)))

    def wish_upscales(self, photo_ids: Sequence[int], source: str) -> int:
        return self._run(lambda c: serving.wish(q.SqliteStyle(c), photo_ids, source, now_text()))

    def upscale_work(self, scope: Sequence[str] | None = None) -> list[int]:
        return self._run(lambda c: serving.work(q.SqliteStyle(c), serving.scope_sql(scope)))

    def upscale_intents(self, photo_id: int, generated_ids: Sequence[str]) -> list[str]:
        return self._run(
            lambda c: serving.intents(q.SqliteStyle(c), photo_id, generated_ids, now_text())
        )

    def upscale_answered(self, generated_id: str, error: str | None) -> None:
        self._run(lambda c: serving.answered(q.SqliteStyle(c), generated_id, error, now_text()))

    def finish_upscale(
        self, generated_id: str, output_path: str | None, error: str | None = None
    ) -> bool:
        return self._run(
            lambda c: serving.finish(q.SqliteStyle(c), generated_id, output_path, error, now_text())
        )

    def upscale(self, generated_id: str) -> UpscaleRow | None:
        return self._run(lambda c: serving.one(q.SqliteStyle(c), generated_id))

    def upscales(self, scope: Sequence[str] | None = None) -> list[UpscaleRow]:
        return self._run(lambda c: serving.every(q.SqliteStyle(c), serving.scope_sql(scope)))
