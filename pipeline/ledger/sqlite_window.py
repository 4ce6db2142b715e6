"""The order window's store in SQLite: each order POST's intent and answer, and the count
that decides, in the intent's own transaction, whether the account's window has room."""

from __future__ import annotations

__all__ = ["IN_FLIGHT_POLL_SECONDS", "answer_post", "window_wait"]

import sqlite3
import time

from pipeline.bootclock import Stamp
from pipeline.ledger import statements as S
from pipeline.ledger.records import WindowRule

IN_FLIGHT_POLL_SECONDS = 0.1


def window_wait(conn: sqlite3.Connection, rule: WindowRule, stamp: Stamp, wall: float) -> float:
    """Seconds until the account's window has room for one more order (0: room now).

    Each order POST counts from its answer (or, unanswered, from its intent plus the longest a
    request may take: a killed run's POST) until ``per_seconds`` later, refusals and intents
    never sent excepted (an intent is sent at once or never: see LastPost). On this boot the
    boot clock measures; posts of another boot fall back on the wall clock, and a time ahead of
    this clock counts as now.
    """
    # Fewer order POSTs ever than the window holds: room, without reading them. Ids are
    # distinct positive integers, so there are at most max(id) rows. Without this, a window
    # far wider than a run (a plan's, or the benchmarks' "no window") read every post of the
    # run for each order: the client's CPU per photo grew with the run (9 ms at 2,000 photos).
    (most,) = conn.execute(S.LAST_POST_ID).fetchone()
    if most < rule.orders:
        return 0.0
    horizon = rule.per_seconds + rule.answer_within
    # The account's own posts, and those recorded before posts named their account (''); a
    # rule of no account ('') counts every account's: the safe side, never a 429.
    rows = conn.execute(
        "SELECT id, boot, intent_clock, intent_wall, answer_clock, answer_wall "
        "FROM order_posts WHERE intent_wall >= ? "
        "AND (outcome IS NULL OR outcome NOT IN ('refused', 'unsent')) "
        "AND (account = '' OR ? IN (account, '')) "
        "UNION SELECT id, boot, intent_clock, intent_wall, answer_clock, answer_wall "
        "FROM order_posts WHERE boot = ? AND intent_clock >= ? "
        "AND (outcome IS NULL OR outcome NOT IN ('refused', 'unsent')) "
        "AND (account = '' OR ? IN (account, ''))",
        (wall - horizon, rule.account, stamp.boot, stamp.seconds - horizon, rule.account),
    ).fetchall()
    expiries = []
    in_flight = False
    for _, boot, intent_clock, intent_wall, answer_clock, answer_wall in rows:
        # A time ahead of now is capped at now: another machine's clock (a ledger imported
        # from it, or one set a month ahead) never holds this account's window for longer
        # than a window, nor counts as in flight for ever.
        if boot and boot == stamp.boot:
            now = stamp.seconds
            answered, intent = answer_clock, intent_clock
        else:
            now = wall
            answered, intent = answer_wall, intent_wall
        if answered is not None:
            age = now - min(answered, now)
        else:
            age = now - (min(intent, now) + rule.answer_within)
        if (left := rule.per_seconds - age) > 0:
            expiries.append(left)
            in_flight = in_flight or age < 0  # its answer may come any moment
    if len(expiries) < rule.orders:
        return 0.0
    expiries.sort(reverse=True)
    wait = float(expiries[rule.orders - 1])
    # An order in flight (another process's, most likely) ends with its answer, which no event
    # here announces: look again soon rather than wait out the request's longest time.
    return min(wait, IN_FLIGHT_POLL_SECONDS) if in_flight else wait


def cap_future_posts(conn: sqlite3.Connection, stamp: Stamp, wall: float) -> int:
    """Order times of another boot ahead of this wall clock become now; returns how many.

    Once, when a run starts: ``window_wait`` also counts a future time as now, but that "now"
    moves with the clock, so such an order would hold the window until the clock caught up
    (a month, for a ledger from a machine a month ahead). Written down, it ages from here.
    This boot's own posts are on the boot clock, which no one sets.
    """
    return conn.execute(
        "UPDATE order_posts SET intent_wall = min(intent_wall, ?), "
        "answer_wall = CASE WHEN answer_wall IS NULL THEN NULL ELSE min(answer_wall, ?) END "
        "WHERE (boot IS NULL OR boot != ?) AND (intent_wall > ? OR answer_wall > ?)",
        (wall, wall, stamp.boot, wall, wall),
    ).rowcount


def answer_post(conn: sqlite3.Connection, photo_id: int, outcome: str) -> None:
    """Record the answer to the photo's latest order POST (its window entry's time)."""
    stamp = Stamp.now()
    conn.execute(
        "UPDATE order_posts SET answer_clock = ?, answer_wall = ?, outcome = ? "
        "WHERE id = (SELECT max(id) FROM order_posts WHERE photo_id = ?) AND outcome IS NULL",
        (stamp.seconds, time.time(), outcome, photo_id),
    )
