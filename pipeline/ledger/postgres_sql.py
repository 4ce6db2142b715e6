"""The PostgreSQL store's SQL that differs from SQLite's: the order window on the database's
clock, orphans and copies, and a small adapter that lets the SQLite store's finding and import
code (sqlite_found.py, sqlite_import.py) run unchanged on a PostgreSQL connection."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from pipeline.ledger.records import WindowRule
from pipeline.ledger.window_log import WindowLog

Conn = psycopg.Connection[tuple[Any, ...]]

ORPHANABLE = ("pending", "uploaded", "failed")  # as sqlite_found.py


class SqliteStyle:
    """``execute``/``executemany`` with SQLite's ``?`` and ``json_each(?)`` on a psycopg
    connection: only for the fixed SQL of sqlite_found.record_found and sqlite_import."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[tuple[Any, ...]]:
        return self._conn.execute(_pg(sql), tuple(params))

    def executemany(
        self, sql: str, seq: Iterable[Sequence[Any]]
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        cur = self._conn.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            cur.executemany(_pg(sql), rows)
        return cur


def _pg(sql: str) -> str:
    return sql.replace("json_each(?)", "json_array_elements_text(?::json)").replace("?", "%s")


# A post's row as window_log.py reads it: the database's clock stands for the wall clock.
_POSTS = (
    "SELECT p.id, NULL, NULL, extract(epoch FROM p.intent_at)::float8, NULL, "
    "extract(epoch FROM p.answer_at)::float8, p.outcome, p.account"
)
_DB_NOW = "extract(epoch FROM clock_timestamp())::float8"


def window_wait(conn: Conn, log: WindowLog, rule: WindowRule) -> float:
    """Seconds until the account's window has room (0: room now), counted on the database's
    clock: each order POST counts from its answer (or, unanswered, its intent plus the longest
    a request may take) until ``per_seconds`` later, refusals and intents never sent excepted.
    As sqlite_window.py: the handle's ``log`` is given the rows added since it last read, with
    the database's clock in the same round trip."""
    horizon = rule.per_seconds + rule.answer_within
    if log.needs_load(horizon):
        top_row = conn.execute("SELECT coalesce(max(id), 0) FROM order_posts").fetchone()
        top = int(top_row[0]) if top_row else 0
        if top < rule.orders:
            return 0.0  # fewer order POSTs ever than the window holds: room (as SQLite's)
        rows = conn.execute(
            f"SELECT {_DB_NOW}, q.* FROM (SELECT 1) AS one LEFT JOIN ({_POSTS} FROM order_posts p "
            "WHERE p.id <= %s AND p.intent_at >= clock_timestamp() - make_interval(secs => %s)) "
            "AS q ON TRUE ORDER BY q.id",
            (top, horizon),
        ).fetchall()
        log.load([r[1:] for r in rows if r[1] is not None], top, horizon)
    else:
        rows = conn.execute(
            f"SELECT {_DB_NOW}, q.* FROM (SELECT 1) AS one LEFT JOIN ({_POSTS} FROM order_posts p "
            "WHERE p.id > %s) AS q ON TRUE ORDER BY q.id",
            (log.last_id,),
        ).fetchall()
        log.add([r[1:] for r in rows if r[1] is not None])
    now = float(rows[-1][0])

    def reread(post_ids: list[int]) -> list[tuple[Any, ...]]:
        return conn.execute(
            f"{_POSTS} FROM order_posts p WHERE p.id = ANY(%s)", (post_ids,)
        ).fetchall()

    return log.wait(rule, None, time.monotonic(), now, reread)


def answer_post(
    conn: Conn, log: WindowLog, photo_id: int, outcome: str, clock: float, wall: float
) -> None:
    """Record the answer to the photo's latest order POST, on the database's clock: when its
    transaction began (``now()``), which is after the answer came (its write was queued then),
    not when the group's writes before it are done."""
    answered = conn.execute(
        "UPDATE order_posts SET answer_clock = %s, answer_wall = %s, outcome = %s, "
        "answer_at = now() "
        "WHERE id = (SELECT max(id) FROM order_posts WHERE photo_id = %s) AND outcome IS NULL "
        "RETURNING id, extract(epoch FROM answer_at)::float8",
        (clock, wall, outcome, photo_id),
    ).fetchone()
    if answered is not None:
        log.answered(int(answered[0]), None, float(answered[1]), outcome)


def unpaid_originals(
    conn: Conn, copy_ids: Sequence[int], owner: str | None, *, lock: bool = False
) -> list[tuple[int, int, str, bool]]:
    """As sqlite_found.unpaid_originals, leaving out originals another run's live claim
    holds (another machine is on it); ``lock``: lock the originals' rows until commit,
    leaving out those another transaction holds this moment."""
    rows = conn.execute(
        "SELECT c.id, o.id, o.path, (o.current = 1 AND o.state != 'failed') FROM photos c "
        "JOIN photos o ON o.id = c.duplicate_of "
        "WHERE c.id = ANY(%s) AND c.state = 'duplicate' "
        "AND o.charged = 0 AND o.state = ANY(%s) AND (o.claimed_by IS NULL "
        "OR o.claimed_by = %s OR o.claim_until < extract(epoch FROM clock_timestamp()))"
        + (" FOR UPDATE OF o SKIP LOCKED" if lock else ""),
        (list(copy_ids), list(ORPHANABLE), owner or ""),
    ).fetchall()
    return [(c, o, path, bool(stands)) for c, o, path, stands in rows]


def adopt(conn: Conn, copy_id: int, original_id: int, gone: bool, now: str) -> None:
    """As sqlite_found.adopt: the copy takes the unpaid original's place (and its upload)."""
    found = conn.execute(
        "SELECT state, order_id FROM photos WHERE id = %s", (original_id,)
    ).fetchone()
    assert found is not None
    state, order_id = found
    keeps_upload = state == "uploaded" and order_id is not None
    conn.execute(
        "UPDATE photos SET state = %s, order_id = %s, duplicate_of = NULL, error = NULL, "
        "retryable = 0, failed_from = NULL, updated_at = %s WHERE id = %s",
        ("uploaded" if keeps_upload else "pending", order_id if keeps_upload else None, now,
         copy_id),
    )  # fmt: skip
    conn.execute(
        "UPDATE photos SET state = 'duplicate', duplicate_of = %s, order_id = NULL, "
        "current = CASE WHEN %s THEN 0 ELSE current END, updated_at = %s WHERE id = %s",
        (copy_id, gone, now, original_id),
    )
    conn.execute(
        "UPDATE photos SET duplicate_of = %s WHERE duplicate_of = %s AND id != %s",
        (copy_id, original_id, copy_id),
    )


def scope_clause(folders: Sequence[str] | None) -> tuple[str, list[object]]:
    """SQL that keeps photos in these folders or below them (exact, case-sensitive)."""
    if folders is None:
        return "TRUE", []
    if not folders:
        return "FALSE", []
    params: list[object] = []
    for folder in folders:
        prefix = folder.rstrip("/") + "/"
        params += [len(prefix), prefix]
    return "(" + " OR ".join(["substr(path, 1, %s) = %s"] * len(folders)) + ")", params
