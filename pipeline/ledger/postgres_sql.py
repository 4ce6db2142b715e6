"""The PostgreSQL store's SQL that differs from SQLite's: the order window on the database's
clock, orphans and copies, and a small adapter that lets the SQLite store's finding and import
code (sqlite_found.py, sqlite_import.py) run unchanged on a PostgreSQL connection."""

from __future__ import annotations

__all__ = [
    "IN_FLIGHT_POLL_SECONDS",
    "ORPHANABLE",
    "Conn",
    "SqliteStyle",
    "answer_post",
    "pg",
    "scope_clause",
    "unpaid_originals",
    "window_wait",
]

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from pipeline.filenames import stored, unstored
from pipeline.ledger.records import WindowRule

Conn = psycopg.Connection[tuple[Any, ...]]

IN_FLIGHT_POLL_SECONDS = 0.1  # as sqlite_window.py
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


def window_wait(conn: Conn, rule: WindowRule) -> float:
    """Seconds until the account's window has room (0: room now), counted on the database's
    clock: each order POST counts from its answer (or, unanswered, its intent plus the longest
    a request may take) until ``per_seconds`` later, refusals and intents never sent excepted.
    As sqlite_window.py: a time ahead of the database's clock (a ledger imported from a machine
    whose clock ran ahead) counts as now."""
    horizon = rule.per_seconds + rule.answer_within
    rows = conn.execute(
        # least() skips NULLs: an unanswered post must stay NULL here, not become "now".
        "SELECT extract(epoch FROM clock_timestamp() - coalesce("
        "CASE WHEN answer_at IS NOT NULL THEN least(answer_at, clock_timestamp()) END, "
        "least(intent_at, clock_timestamp()) + make_interval(secs => %s)))::float8 "
        "FROM order_posts "
        "WHERE intent_at >= clock_timestamp() - make_interval(secs => %s) "
        "AND (outcome IS NULL OR outcome NOT IN ('refused', 'unsent')) "
        "AND (account = '' OR %s IN (account, ''))",  # as sqlite_window.py
        (rule.answer_within, horizon, rule.account),
    ).fetchall()
    expiries = []
    in_flight = False
    for (age,) in rows:
        if (left := rule.per_seconds - age) > 0:
            expiries.append(left)
            in_flight = in_flight or age < 0
    if len(expiries) < rule.orders:
        return 0.0
    expiries.sort(reverse=True)
    wait = float(expiries[rule.orders - 1])
    return min(wait, IN_FLIGHT_POLL_SECONDS) if in_flight else wait


def cap_future_posts(conn: Conn) -> int:
    """Order times ahead of the database's clock (imported from a machine whose clock ran
    ahead, or a server clock set back) become now; returns how many. As sqlite_window.py."""
    return conn.execute(
        "UPDATE order_posts SET intent_at = least(intent_at, clock_timestamp()), "
        "answer_at = CASE WHEN answer_at IS NULL THEN NULL "
        "ELSE least(answer_at, clock_timestamp()) END, "
        "intent_wall = least(intent_wall, extract(epoch FROM clock_timestamp())::float8), "
        "answer_wall = CASE WHEN answer_wall IS NULL THEN NULL "
        "ELSE least(answer_wall, extract(epoch FROM clock_timestamp())::float8) END "
        "WHERE intent_at > clock_timestamp() OR answer_at > clock_timestamp()"
    ).rowcount


def answer_post(conn: Conn, photo_id: int, outcome: str, clock: float, wall: float) -> None:
    """Record the answer to the photo's latest order POST, on the database's clock: when its
    transaction began (``now()``), which is after the answer came (its write was queued then),
    not when the group's writes before it are done."""
    conn.execute(
        "UPDATE order_posts SET answer_clock = %s, answer_wall = %s, outcome = %s, "
        "answer_at = now() "
        "WHERE id = (SELECT max(id) FROM order_posts WHERE photo_id = %s) AND outcome IS NULL",
        (clock, wall, outcome, photo_id),
    )


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
