"""The order window's store in SQLite: each order POST's intent and answer, and the count
that decides, in the intent's own transaction, whether the account's window has room.

The count is kept by a ``WindowLog`` per ledger handle (window_log.py): each check reads only
the rows added since the last one.
"""

from __future__ import annotations

__all__ = ["answer_post", "cap_future_posts", "window_wait"]

import json
import sqlite3
import time

from pipeline.bootclock import Stamp, boot_seconds
from pipeline.ledger import statements as S
from pipeline.ledger.records import WindowRule
from pipeline.ledger.window_log import PostRow, WindowLog

_POSTS = (
    "SELECT id, boot, intent_clock, intent_wall, answer_clock, answer_wall, outcome, account "
    "FROM order_posts "
)
_HORIZON = (
    _POSTS + "WHERE id <= ? AND (intent_wall >= ? OR (boot = ? AND intent_clock >= ?)) ORDER BY id"
)
_SINCE = _POSTS + "WHERE id > ? ORDER BY id"
_THESE = _POSTS + "WHERE id IN (SELECT value FROM json_each(?))"


def window_wait(
    conn: sqlite3.Connection, log: WindowLog, rule: WindowRule, boot: str, clock: float, wall: float
) -> float:
    """Seconds until the account's window has room for one more order (0: room now).

    Each order POST counts from its answer (or, unanswered, from its intent plus the longest a
    request may take: a killed run's POST) until ``per_seconds`` later, refusals and intents
    never sent excepted (an intent is sent at once or never: see LastPost). On this boot
    (``boot``, whose clock reads ``clock`` now) the boot clock measures; posts of another boot
    fall back on the wall clock (``wall``); a time ahead of this clock counts as now, from when
    it was read (window_log.py).
    """
    horizon = rule.per_seconds + rule.answer_within
    if log.needs_load(horizon):
        (top,) = conn.execute(S.LAST_POST_ID).fetchone()
        if top < rule.orders:
            # Fewer order POSTs ever than the window holds (ids are distinct positive
            # integers): room, nothing read. A window far wider than a run (a plan's, or the
            # benchmarks' "no window") stays here, its log never started.
            return 0.0
        # The rows of the horizon, once; every id up to ``top`` is then read. Ids commit in
        # order (one writer at a time), so the rows up to ``top`` are all in this read's view.
        rows = conn.execute(_HORIZON, (top, wall - horizon, boot, clock - horizon)).fetchall()
        log.load(rows, top, horizon, boot, boot_seconds(), time.time())
    else:
        rows = conn.execute(_SINCE, (log.last_id,)).fetchall()
        if rows:
            log.add(rows, boot, boot_seconds(), time.time())

    def reread(post_ids: list[int]) -> list[PostRow]:
        return conn.execute(_THESE, (json.dumps(post_ids),)).fetchall()

    return log.wait(rule, boot, clock, wall, reread)


def cap_future_posts(conn: sqlite3.Connection, log: WindowLog, stamp: Stamp, wall: float) -> int:
    """Order times of another boot ahead of this wall clock become now; returns how many.

    Once, when a run starts: the window log counts a future time as now from when it read it,
    but another handle (or a run after this one) would start again from the ledger's future
    time; written down, it ages from here for everyone. This boot's own posts are on the boot
    clock, which no one sets. ``log`` forgets what it read: those rows changed.
    """
    capped = conn.execute(
        "UPDATE order_posts SET intent_wall = min(intent_wall, ?), "
        "answer_wall = CASE WHEN answer_wall IS NULL THEN NULL ELSE min(answer_wall, ?) END "
        "WHERE (boot IS NULL OR boot != ?) AND (intent_wall > ? OR answer_wall > ?)",
        (wall, wall, stamp.boot, wall, wall),
    ).rowcount
    if capped:
        log.forget()
    return capped


def answer_post(conn: sqlite3.Connection, log: WindowLog, photo_id: int, outcome: str) -> None:
    """Record the answer to the photo's latest order POST (its window entry's time)."""
    clock, wall = boot_seconds(), time.time()
    answered = conn.execute(
        "UPDATE order_posts SET answer_clock = ?, answer_wall = ?, outcome = ? "
        "WHERE id = (SELECT max(id) FROM order_posts WHERE photo_id = ?) AND outcome IS NULL "
        "RETURNING id",
        (clock, wall, outcome, photo_id),
    ).fetchone()
    if answered is not None:
        log.answered(answered[0], clock, wall, outcome)
