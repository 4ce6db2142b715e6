"""The PostgreSQL store's SQL that differs from SQLite's: the order window on the database's
clock, orphans and copies, and a small adapter that lets the SQLite store's finding and import
code (sqlite_found.py, sqlite_import.py) run unchanged on a PostgreSQL connection."""

from __future__ import annotations

__all__ = [
    "ORPHANABLE",
    "Conn",
    "SqliteStyle",
    "answer_post",
    "cap_future_posts",
    "pg",
    "scope_clause",
    "unpaid_originals",
    "window_wait",
]

import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from pipeline.filenames import stored, unstored
from pipeline.ledger import statements as S
from pipeline.ledger.records import WindowRule
from pipeline.ledger.window_log import WindowLog

Conn = psycopg.Connection[tuple[Any, ...]]

ORPHANABLE = ("pending", "uploaded", "failed")  # as sqlite_found.py


class SqliteStyle:
    """``execute``/``executemany`` with SQLite's ``?`` and ``json_each(?)`` on a psycopg
    connection: the statements both stores run (statements.py, sqlite_found.py,
    sqlite_import.py, after_order.py, serving.py, identity_sql.py)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[tuple[Any, ...]]:
        return self._conn.execute(pg(sql), tuple(params))

    def executemany(
        self, sql: str, seq: Iterable[Sequence[Any]]
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        cur = self._conn.cursor()
        rows = [tuple(p) for p in seq]
        if rows:
            cur.executemany(pg(sql), rows)
        return cur


@lru_cache(maxsize=256)
def pg(sql: str) -> str:
    """SQLite's form of a statement (statements.py) in PostgreSQL's: ``?`` as ``%s``, a list
    of ids read by ``json_each(?)`` by ``json_array_elements_text(?::json)``."""
    return sql.replace("json_each(?)", "json_array_elements_text(?::json)").replace("?", "%s")


# A post's row as window_log.py reads it: the database's clock stands for the wall clock, and
# a time ahead of it counts as now (no foreign clock is trusted). least() skips NULLs: an
# unanswered post's answer must stay NULL, not become "now".
_POSTS = (
    "SELECT p.id, NULL, NULL, extract(epoch FROM least(p.intent_at, clock_timestamp()))::float8, "
    "NULL, extract(epoch FROM CASE WHEN p.answer_at IS NOT NULL "
    "THEN least(p.answer_at, clock_timestamp()) END)::float8, p.outcome, p.account"
)
_DB_NOW = "extract(epoch FROM clock_timestamp())::float8"


def window_wait(conn: Conn, log: WindowLog, rule: WindowRule) -> float:
    """Seconds until the account's window has room (0: room now), counted on the database's
    clock: each order POST counts from its answer (or, unanswered, its intent plus the longest
    a request may take) until ``per_seconds`` later, refusals and intents never sent excepted.
    As sqlite_window.py: the handle's ``log`` is given the rows added since it last read, with
    the database's clock in the same round trip; a time ahead of that clock (a ledger imported
    from a machine whose clock ran ahead) is read as now (``least``, in ``_POSTS``)."""
    horizon = rule.per_seconds + rule.answer_within
    if log.needs_load(horizon):
        top_row = conn.execute(S.LAST_POST_ID).fetchone()
        top = int(top_row[0]) if top_row else 0
        if top < rule.orders:
            return 0.0  # fewer order POSTs ever than the window holds: room (as SQLite's)
        rows = conn.execute(
            f"SELECT {_DB_NOW}, q.* FROM (SELECT 1) AS one LEFT JOIN ({_POSTS} FROM order_posts p "
            "WHERE p.id <= %s AND p.intent_at >= clock_timestamp() - make_interval(secs => %s)) "
            "AS q ON TRUE ORDER BY q.id",
            (top, horizon),
        ).fetchall()
        now = float(rows[-1][0])
        log.load([r[1:] for r in rows if r[1] is not None], top, horizon, None, 0.0, now)
    else:
        rows = conn.execute(
            f"SELECT {_DB_NOW}, q.* FROM (SELECT 1) AS one LEFT JOIN ({_POSTS} FROM order_posts p "
            "WHERE p.id > %s) AS q ON TRUE ORDER BY q.id",
            (log.last_id,),
        ).fetchall()
        now = float(rows[-1][0])
        log.add([r[1:] for r in rows if r[1] is not None], None, 0.0, now)

    def reread(post_ids: list[int]) -> list[tuple[Any, ...]]:
        return conn.execute(
            f"{_POSTS} FROM order_posts p WHERE p.id = ANY(%s)", (post_ids,)
        ).fetchall()

    return log.wait(rule, None, time.monotonic(), now, reread)


def cap_future_posts(conn: Conn, log: WindowLog) -> int:
    """Order times ahead of the database's clock (imported from a machine whose clock ran
    ahead, or a server clock set back) become now; returns how many. As sqlite_window.py."""
    capped = conn.execute(
        "UPDATE order_posts SET intent_at = least(intent_at, clock_timestamp()), "
        "answer_at = CASE WHEN answer_at IS NULL THEN NULL "
        "ELSE least(answer_at, clock_timestamp()) END, "
        "intent_wall = least(intent_wall, extract(epoch FROM clock_timestamp())::float8), "
        "answer_wall = CASE WHEN answer_wall IS NULL THEN NULL "
        "ELSE least(answer_wall, extract(epoch FROM clock_timestamp())::float8) END "
        "WHERE intent_at > clock_timestamp() OR answer_at > clock_timestamp()"
    ).rowcount
    if capped:
        log.forget()
    return capped


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
    return [(c, o, unstored(path), bool(stands)) for c, o, path, stands in rows]


def scope_clause(folders: Sequence[str] | None) -> tuple[str, list[object]]:
    """SQL that keeps photos in these folders or below them (exact, case-sensitive)."""
    if folders is None:
        return "TRUE", []
    if not folders:
        return "FALSE", []
    # One array of the folders, not an OR per folder: as SQLite's (its depth limit), and one
    # parameter for a manifest's glob of a thousand listings. Each prefix in its stored form
    # (filenames.py), a prefix of its photos' stored paths.
    prefixes = sorted({stored(folder.rstrip("/") + "/") for folder in folders})
    clause = (
        "EXISTS (SELECT 1 FROM unnest(%s::text[]) AS s(prefix) "
        "WHERE left(path, length(s.prefix)) = s.prefix)"
    )
    return clause, [prefixes]
