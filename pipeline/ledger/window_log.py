"""The account's order window as one ledger handle sees it: the order POSTs it has read.

Every order POST of the account is a row of ``order_posts``, whichever process or machine made
it, and the window is counted from those rows (see ``wait``). Reading every row of the window's
horizon for each check made a run's CPU per photo grow with the run: under a wide window, every
POST of the last ``per_seconds + answer_within`` seconds, twice per photo (9 ms a photo at
2,000 photos, bench/RESULTS.md). A handle keeps the rows it has read instead, and each check
reads only the rows added since the last (``id > last_id``) and, only when the window may be
full, the answers of the POSTs still in flight: O(1) a photo, whatever the run's length.

Reading by id is exact because ids only grow in commit order: every intent is inserted under
the store's write lock (SQLite's database lock; PostgreSQL's window lock, held to COMMIT), so no
row can later appear below an id already read. A row changes once (its answer or refusal) and
only while unanswered, which is why only those are read again. A transaction that rolls back
may have shown this handle its own uncommitted rows: the store calls ``forget`` then.

No foreign clock is trusted (issue 20, item 7): a time ahead of this handle's clock (a ledger
imported from a machine whose clock ran a month ahead) is written down, as the log reads it, to
the moment it was read, which is no earlier than the POST really was; from there it ages as any
other, so it holds the window one window at most. Were it only counted as "now" at each check,
it would hold the window, in a handle that keeps its rows, until the clock caught up.
``cap_future_posts`` writes such times down in the ledger too, once at a run's start.
"""

from __future__ import annotations

__all__ = [
    "IN_FLIGHT_POLL_SECONDS",
    "NOT_COUNTED",
    "REREAD_SECONDS",
    "PostRow",
    "Reread",
    "WindowLog",
]

from collections.abc import Callable, Sequence
from typing import Any

from pipeline.ledger.records import WindowRule

IN_FLIGHT_POLL_SECONDS = 0.1
REREAD_SECONDS = 1.0  # at most this often, the oldest post in flight is read again
_TIDY_SLACK = 64  # the log is tidied when it holds this many more than after the last tidying
# Answers whose post never counts: a refusal, and an intent never sent (see LastPost).
NOT_COUNTED = frozenset(("refused", "unsent"))

# A post as the stores read it: (id, boot, intent_clock, intent_wall, answer_clock, answer_wall,
# outcome, account), kept as read (one per order POST, on the run's hot path). On PostgreSQL the
# database's clock gives the wall times, and boot and boot clock are NULL.
PostRow = Sequence[Any]
Reread = Callable[[list[int]], Sequence[PostRow]]


class WindowLog:
    """The order POSTs of the account's window horizon that this handle has read, by id."""

    __slots__ = ("_horizon", "_posts", "_reread_at", "_tidy_at", "last_id")

    def __init__(self) -> None:
        self.last_id = 0  # every row up to this id has been read (or was out of the horizon)
        self._horizon = -1.0  # the horizon read at the start; -1: none read yet
        self._posts: dict[int, PostRow] = {}  # in id order: the oldest intents first
        self._tidy_at = _TIDY_SLACK  # the log's size at which it is tidied, full or not
        self._reread_at = 0.0  # on the clock ``wait`` is given: when the oldest may be read again

    def forget(self) -> None:
        """Read the whole horizon again next time (a transaction that showed rows rolled back)."""
        self.last_id = 0
        self._horizon = -1.0
        self._posts.clear()
        self._tidy_at = _TIDY_SLACK

    def needs_load(self, horizon: float) -> bool:
        """True when the horizon must be read whole: first use, after ``forget``, or a rule
        that looks further back than the one the log was started with."""
        return horizon > self._horizon

    def load(
        self,
        rows: Sequence[PostRow],
        up_to: int,
        horizon: float,
        boot: str | None,
        clock: float,
        wall: float,
    ) -> None:
        """Start afresh from the rows of the horizon, read in id order with every id up to
        ``up_to`` (the highest that exists) in the same view of the table; ``boot``, ``clock``
        and ``wall``: now, read after the rows (see ``add``)."""
        self.forget()
        self.add(rows, boot, clock, wall)
        self.last_id = max(self.last_id, up_to)
        self._horizon = horizon

    def add(self, rows: Sequence[PostRow], boot: str | None, clock: float, wall: float) -> None:
        """Rows added since ``last_id``, read in id order; a time in them ahead of now (this
        ``boot``'s ``clock``, or ``wall``, taken once the rows were read) is kept as now."""
        if rows:
            posts = self._posts
            for row in rows:
                if row[6] not in NOT_COUNTED:
                    posts[row[0]] = _capped(row, boot, clock, wall)
            self.last_id = rows[-1][0]

    def answered(
        self, post_id: int, answer_clock: float | None, answer_wall: float, outcome: str
    ) -> None:
        """This handle wrote the answer of one of the posts (its own, read or not yet)."""
        post = self._posts.get(post_id)
        if post is None:
            return  # not read yet: it will be read as it is, answer included
        if outcome in NOT_COUNTED:
            del self._posts[post_id]
        else:
            self._posts[post_id] = (*post[:4], answer_clock, answer_wall, outcome, post[7])

    def wait(
        self, rule: WindowRule, boot: str | None, clock: float, wall: float, reread: Reread
    ) -> float:
        """Seconds until the account's window has room for one more order (0: room now).

        Each order POST counts from its answer (or, unanswered, from its intent plus the longest
        a request may take: a killed run's POST) until ``per_seconds`` later, refusals and
        intents never sent excepted.
        On this ``boot`` its clock measures; posts of another boot fall back on the wall clock
        (PostgreSQL's posts are all measured on the database's clock, passed as ``wall``).
        The rule's account's posts count, and those recorded before posts named their account
        (''); a rule of no account ('') counts every post: the safe side, never a 429. The log
        keeps every account's posts (one ledger file may serve several accounts).
        ``reread`` reads again the rows of these ids (those still in flight here).
        """
        posts = self._posts
        if len(posts) < rule.orders and len(posts) < self._tidy_at:
            return 0.0  # fewer POSTs than the window holds, even counting all: room
        horizon = rule.per_seconds + rule.answer_within
        self._tidy(rule, horizon, boot, clock, wall, reread)
        if len(posts) < rule.orders:
            return 0.0
        unanswered = [post_id for post_id, post in posts.items() if post[6] is None]
        if unanswered:
            self._reread(unanswered, reread, boot, clock, wall)
        account = rule.account
        expiries = []
        in_flight = False
        for post in posts.values():
            if account and post[7] and post[7] != account:
                continue  # another account's window
            if not _in_horizon(post, horizon, boot, clock, wall):
                continue
            age = _age(post, rule, boot, clock, wall)
            if (left := rule.per_seconds - age) > 0:
                expiries.append(left)
                in_flight = in_flight or age < 0  # its answer may come any moment
        if len(expiries) < rule.orders:
            return 0.0
        expiries.sort(reverse=True)
        wait = float(expiries[rule.orders - 1])
        # An order in flight (another process's, most likely) ends with its answer, which no
        # event here announces: look again soon rather than wait out the request's longest time.
        return min(wait, IN_FLIGHT_POLL_SECONDS) if in_flight else wait

    def _tidy(
        self,
        rule: WindowRule,
        horizon: float,
        boot: str | None,
        clock: float,
        wall: float,
        reread: Reread,
    ) -> None:
        """Posts that left the window leave the log, oldest first (one that left behind a
        younger one stays a while, and is not counted). Done when the window may be full, or
        when the log has grown: each post leaves once, so it costs O(1) a post."""
        self._leave(rule, horizon, boot, clock, wall)
        posts = self._posts
        if posts and next(iter(posts.values()))[6] is None and clock >= self._reread_at:
            # The oldest is in flight as last read: another process's POST, whose answer
            # this handle hears of only by reading it. Its answer lets it (and the posts behind
            # it) leave, so the log does not grow for the horizon's whole length.
            self._reread_at = clock + REREAD_SECONDS
            in_flight = [i for i, post in posts.items() if post[6] is None]
            self._reread(in_flight, reread, boot, clock, wall)
            self._leave(rule, horizon, boot, clock, wall)
        self._tidy_at = 2 * len(posts) + _TIDY_SLACK

    def _leave(
        self, rule: WindowRule, horizon: float, boot: str | None, clock: float, wall: float
    ) -> None:
        posts = self._posts
        per_seconds = rule.per_seconds
        while posts:
            post_id, post = next(iter(posts.items()))
            # Most often this boot's answered post whose time is up: told at once.
            quick = (
                bool(boot)
                and post[1] == boot
                and post[4] is not None
                and (clock - post[4] >= per_seconds)
            )
            if not quick and _counts(post, rule, horizon, boot, clock, wall):
                return
            del posts[post_id]

    def _reread(
        self, post_ids: list[int], reread: Reread, boot: str | None, clock: float, wall: float
    ) -> None:
        """The rows of these ids as they stand now: answered, refused or never sent (dropped), or
        still not; a time ahead of now kept as now (see ``add``)."""
        posts = self._posts
        found = set()
        for row in reread(post_ids):
            post_id = row[0]
            found.add(post_id)
            if post_id not in posts:
                continue  # not asked for: an entry added here would be out of id order
            if row[6] in NOT_COUNTED:
                del posts[post_id]
            elif row[6] is not None:
                # Its answer, with the intent's times as first read (and kept): only an answer
                # changes a row, and a future intent taken again as "now" would never age.
                posts[post_id] = _capped((*posts[post_id][:4], *row[4:]), boot, clock, wall)
        for post_id in post_ids:
            if post_id not in found:
                posts.pop(post_id, None)  # a row that is not there does not count


def _capped(post: PostRow, boot: str | None, clock: float, wall: float) -> PostRow:
    """The post with each of its times that is ahead of now written down to now: on this boot
    its clock's (``clock``), and the wall clock's (``wall``) for every post. The post is no
    younger than that (it was there to be read), so it counts no shorter than it should."""
    _, post_boot, intent_clock, intent_wall, answer_clock, answer_wall, *_ = post
    on_boot = bool(boot) and post_boot == boot
    ahead = intent_wall > wall or (answer_wall is not None and answer_wall > wall)
    if on_boot:
        ahead = ahead or intent_clock > clock or (answer_clock is not None and answer_clock > clock)
    if not ahead:
        return post  # nearly always: read as it is, not copied
    if on_boot:
        intent_clock = min(intent_clock, clock)
        answer_clock = None if answer_clock is None else min(answer_clock, clock)
    intent_wall = min(intent_wall, wall)
    answer_wall = None if answer_wall is None else min(answer_wall, wall)
    return (post[0], post_boot, intent_clock, intent_wall, answer_clock, answer_wall, *post[6:])


def _in_horizon(post: PostRow, horizon: float, boot: str | None, clock: float, wall: float) -> bool:
    """Whether the post's intent is recent enough to count at all, as the stores always read:
    by the wall clock, or on this boot by its clock."""
    if post[3] >= wall - horizon:
        return True
    return post[1] is not None and post[1] == boot and post[2] >= clock - horizon


def _age(post: PostRow, rule: WindowRule, boot: str | None, clock: float, wall: float) -> float:
    """Seconds since the moment the post counts from (negative: an answer still to come).

    A time ahead of now counts as now (as read, it was kept so: ``_capped``; this holds if the
    wall clock is later set back)."""
    _, post_boot, intent_clock, intent_wall, answer_clock, answer_wall, *_ = post
    if post_boot and post_boot == boot:
        now = clock
        answered, intent = answer_clock, intent_clock
    else:
        now = wall
        answered, intent = answer_wall, intent_wall
    if answered is not None:
        return float(now - min(answered, now))
    return float(now - (min(intent, now) + rule.answer_within))


def _counts(
    post: PostRow, rule: WindowRule, horizon: float, boot: str | None, clock: float, wall: float
) -> bool:
    """False once the post can never count again: its intent left the horizon, or its answer
    came and ``per_seconds`` passed since (an answer is written once). A wall clock set back
    later does not bring it back: it left the account's window in real time."""
    if not _in_horizon(post, horizon, boot, clock, wall):
        return False
    return post[6] is None or _age(post, rule, boot, clock, wall) < rule.per_seconds
