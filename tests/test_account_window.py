"""The account's order window as each ledger handle counts it (pipeline/ledger/window_log.py).

A handle reads only the order POSTs added since its last check. First, on given times, that
this gives exactly what reading every POST of the horizon gave, whatever the interleaving of
intents, answers, refusals, intents never sent and handles. Then, on both stores (a SQLite
file and a real PostgreSQL), that handles of one ledger see each other's posts, answers,
refusals and intents never sent, and that a rolled-back transaction leaves nothing counted
that is not there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, WindowFull, WindowRule, open_ledger
from pipeline.ledger.window_log import IN_FLIGHT_POLL_SECONDS, WindowLog
from tests.pg_server import PgServer

# -- the log against a full read, on given times ---------------------------------------------

BOOT, OTHER_BOOT = "this-boot", "another-boot"
WALL_OFFSET = 1_700_000_000.0  # the wall clock = the boot clock + this, unless told otherwise


@dataclass
class Post:
    """One row of ``order_posts``."""

    boot: str
    intent_clock: float
    intent_wall: float
    answer_clock: float | None = None
    answer_wall: float | None = None
    outcome: str | None = None
    account: str = ""

    def row(self, post_id: int) -> tuple[Any, ...]:
        return (post_id, self.boot, self.intent_clock, self.intent_wall, self.answer_clock,
                self.answer_wall, self.outcome, self.account)  # fmt: skip


@dataclass
class Table:
    """``order_posts`` in memory, read as the SQLite store reads it."""

    posts: dict[int, Post] = field(default_factory=dict)

    def check(self, log: WindowLog, rule: WindowRule, clock: float, wall: float) -> float:
        horizon = rule.per_seconds + rule.answer_within
        if log.needs_load(horizon):
            top = max(self.posts, default=0)
            rows = [
                p.row(i)
                for i, p in sorted(self.posts.items())
                if p.intent_wall >= wall - horizon
                or (p.boot == BOOT and p.intent_clock >= clock - horizon)
            ]
            log.load(rows, top, horizon, BOOT, clock, wall)
        else:
            rows = [p.row(i) for i, p in sorted(self.posts.items()) if i > log.last_id]
            log.add(rows, BOOT, clock, wall)
        return log.wait(rule, BOOT, clock, wall, lambda ids: [self.posts[i].row(i) for i in ids])

    def full_read(self, rule: WindowRule, clock: float, wall: float) -> float:
        """What the stores computed before the log: every post of the horizon, each time."""
        horizon = rule.per_seconds + rule.answer_within
        expiries, in_flight = [], False
        for p in self.posts.values():
            recent = p.intent_wall >= wall - horizon or (
                p.boot == BOOT and p.intent_clock >= clock - horizon
            )
            if not recent or p.outcome in ("refused", "unsent"):
                continue
            if rule.account and p.account not in ("", rule.account):
                continue  # another account's window
            if p.boot == BOOT:
                at = (
                    p.answer_clock
                    if p.answer_clock is not None
                    else (p.intent_clock + rule.answer_within)
                )
                age = clock - at
            else:
                at = (
                    p.answer_wall
                    if p.answer_wall is not None
                    else (p.intent_wall + rule.answer_within)
                )
                age = wall - at
            if (left := rule.per_seconds - age) > 0:
                expiries.append(left)
                in_flight = in_flight or age < 0
        if len(expiries) < rule.orders:
            return 0.0
        wait = sorted(expiries, reverse=True)[rule.orders - 1]
        return min(wait, IN_FLIGHT_POLL_SECONDS) if in_flight else wait


ACCOUNTS = ["a", "a", "b", ""]  # '': recorded before posts named their account
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("post"),
            st.sampled_from([BOOT, BOOT, BOOT, OTHER_BOOT]),
            st.sampled_from(ACCOUNTS),
        ),
        st.tuples(
            st.just("answer"),
            st.integers(0, 60),
            st.sampled_from(["accepted", "accepted", "lost", "refused", "unsent"]),
        ),
        st.tuples(st.just("wait"), st.floats(0.0, 8.0, allow_nan=False)),
        st.tuples(st.just("check"), st.integers(0, 2)),
        st.tuples(st.just("forget"), st.integers(0, 2)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    orders=st.integers(1, 6),
    per_seconds=st.sampled_from([1.0, 5.0, 30.0]),
    answer_within=st.sampled_from([0.5, 3.0, 20.0]),
    steps=STEPS,
)
def test_reading_only_new_posts_counts_what_reading_them_all_counted(
    orders: int, per_seconds: float, answer_within: float, steps: list[tuple[Any, ...]]
) -> None:
    """Three handles (processes; of account a, of b, of no account named) share a ledger and
    check their windows as posts come, are answered, refused or never sent and time passes:
    each gets exactly what a read of the whole horizon gives."""
    rules = [WindowRule(orders, per_seconds, answer_within, account) for account in "ab"]
    rules.append(WindowRule(orders, per_seconds, answer_within))
    table = Table()
    logs = [WindowLog() for _ in range(3)]
    clock = 1000.0
    for step in steps:
        wall = clock + WALL_OFFSET
        if step[0] == "post":
            # Another boot's post was stamped on its own boot clock: only its wall time counts.
            intent_clock = clock if step[1] == BOOT else clock - 400.0
            table.posts[len(table.posts) + 1] = Post(step[1], intent_clock, wall, account=step[2])
        elif step[0] == "answer":
            unanswered = [p for p in table.posts.values() if p.outcome is None]
            if unanswered:
                post = unanswered[step[1] % len(unanswered)]
                post.answer_clock = clock if post.boot == BOOT else clock - 400.0
                post.answer_wall, post.outcome = wall, step[2]
        elif step[0] == "wait":
            clock += step[1]
        elif step[0] == "forget":
            logs[step[1]].forget()
        else:
            rule = rules[step[1]]
            got = table.check(logs[step[1]], rule, clock, wall)
            assert got == table.full_read(rule, clock, wall), (step, clock)
    for log, rule in zip(logs, rules, strict=True):
        wall = clock + WALL_OFFSET
        assert table.check(log, rule, clock, wall) == table.full_read(rule, clock, wall)


def test_an_answer_written_by_the_handle_is_taken_at_once_and_a_refusal_drops_the_post() -> None:
    """Its own answers reach a handle's log without a read; a refused post no longer counts."""
    rule = WindowRule(orders=2, per_seconds=10.0, answer_within=5.0)
    table = Table()
    log = WindowLog()
    for n in (1, 2):
        table.posts[n] = Post(BOOT, 100.0, 100.0 + WALL_OFFSET)
    assert table.check(log, rule, 101.0, 101.0 + WALL_OFFSET) == IN_FLIGHT_POLL_SECONDS
    log.answered(1, 102.0, 102.0 + WALL_OFFSET, "accepted")
    log.answered(2, 102.0, 102.0 + WALL_OFFSET, "refused")
    assert log.wait(rule, BOOT, 103.0, 103.0 + WALL_OFFSET, lambda ids: []) == 0.0


@pytest.mark.parametrize("answered", [True, False])
def test_times_a_month_ahead_hold_a_handles_window_one_window_at_most(answered: bool) -> None:
    """Another machine's posts stamped a month ahead (issue 20, item 7): kept as now when the
    log reads them, they age from there and the window has room again one window later (an
    unanswered one: after the longest a request may take, as any other), never a month."""
    rule = WindowRule(orders=2, per_seconds=10.0, answer_within=5.0)
    month = 30 * 86400.0
    table = Table()
    for n in (1, 2):
        ahead = 100.0 + WALL_OFFSET + month
        post = Post(OTHER_BOOT, 100.0 + month, ahead)
        if answered:
            post.answer_clock, post.answer_wall, post.outcome = 101.0 + month, ahead + 1, "accepted"
        table.posts[n] = post
    log = WindowLog()
    held = rule.per_seconds + (0.0 if answered else rule.answer_within)
    first = table.check(log, rule, 200.0, 200.0 + WALL_OFFSET)
    assert first == (rule.per_seconds if answered else IN_FLIGHT_POLL_SECONDS)
    later = 200.0 + held - 0.5
    assert 0 < table.check(log, rule, later, later + WALL_OFFSET) <= rule.per_seconds
    after = 200.0 + held
    assert table.check(log, rule, after, after + WALL_OFFSET) == 0.0
    # A handle that first reads them later counts them from then, for one window too.
    late = WindowLog()
    assert 0 < table.check(late, rule, after, after + WALL_OFFSET) <= held


# -- both stores, several handles --------------------------------------------------------------

INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky",))
RULE = WindowRule(orders=2, per_seconds=60.0, answer_within=5.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new ledger: a SQLite file, or a database on the suite's PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "account.sqlite")
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        yield server.new_database()


@pytest.fixture
def two(location: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two handles on one ledger, as two processes (or machines) of the account hold."""
    a, b = open_ledger(location), open_ledger(location)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _photos(ledger: Ledger, count: int) -> list[int]:
    found = [FoundPhoto(f"/m/{n}.jpg", "/m", 100, 1, f"{n:064d}", INDOOR) for n in range(count)]
    return [row.id for row in ledger.record_found(found)]


def test_handles_see_each_others_posts_answers_and_refusals(two: tuple[Ledger, Ledger]) -> None:
    """B counts A's posts, in flight then answered, and gets the slot A's refusal frees."""
    a, b = two
    first, second, third = _photos(a, 3)
    assert b.window_wait(RULE) == 0.0  # B has read the (empty) window before A posts
    a.mark_submitting(first, "order-1", window=RULE)
    a.mark_submitted(first, None, None, answered=True)
    a.mark_submitting(second, "order-2", window=RULE)
    assert b.window_wait(RULE) == IN_FLIGHT_POLL_SECONDS  # full, one in flight: look soon
    with pytest.raises(WindowFull):
        b.mark_submitting(third, "order-3", window=RULE)
    a.mark_uploaded(second, "order-2", refused=True)  # a refusal is not a charge
    assert b.window_wait(RULE) == 0.0
    b.mark_submitting(third, "order-3", window=RULE)
    b.mark_submitted(third, None, None, answered=True)
    assert 59.0 < a.window_wait(RULE) <= 60.0  # two answered: full until the first expires


def test_an_intent_never_sent_leaves_every_handles_window(two: tuple[Ledger, Ledger]) -> None:
    """A's intent that was never sent (no longer fresh when its turn came) frees its slot in
    B's window, though B had read it in flight, as it does in A's own."""
    a, b = two
    first, second, third = _photos(a, 3)
    a.mark_submitting(first, "order-1", window=RULE)
    a.mark_submitting(second, "order-2", window=RULE)
    assert b.window_wait(RULE) == IN_FLIGHT_POLL_SECONDS  # full, in flight: B has read both
    a.mark_unsent(second)
    assert a.window_wait(RULE) == 0.0
    assert b.window_wait(RULE) == 0.0
    b.mark_submitting(third, "order-3", window=RULE)
    assert a.window_wait(RULE) == IN_FLIGHT_POLL_SECONDS  # full again: the first and B's


def test_a_rolled_back_transaction_leaves_nothing_counted_that_is_not_there(
    two: tuple[Ledger, Ledger],
) -> None:
    """A's group posts, refuses and posts again, then rolls back: B's post that comes after
    (in SQLite under the very id A's rolled-back post had) is counted, and A's is not."""
    a, b = two
    first, second, third = _photos(a, 3)
    one = WindowRule(orders=1, per_seconds=60.0, answer_within=5.0)
    with pytest.raises(RuntimeError), a.grouped():
        a.mark_submitting(first, "order-1", window=one)
        a.mark_uploaded(first, "order-1", refused=True)
        a.mark_submitting(second, "order-2", window=one)  # its check read the first post
        raise RuntimeError("the group's transaction is lost")
    assert a.window_wait(one) == 0.0  # nothing of the group is there
    b.mark_submitting(third, "order-3", window=one)
    assert a.window_wait(one) == IN_FLIGHT_POLL_SECONDS
    with pytest.raises(WindowFull):
        a.mark_submitting(first, "order-1", window=one)


def test_a_handle_opened_later_counts_the_posts_of_the_horizon(location: str) -> None:
    """The first check reads the horizon: an earlier process's answered posts count."""
    earlier = open_ledger(location)
    try:
        for photo in _photos(earlier, 2):
            earlier.mark_submitting(photo, f"order-{photo}", window=RULE)
            earlier.mark_submitted(photo, None, None, answered=True)
    finally:
        earlier.close()
    later = open_ledger(location)
    try:
        assert 59.0 < later.window_wait(RULE) <= 60.0
        wider = WindowRule(orders=3, per_seconds=60.0, answer_within=5.0)
        assert later.window_wait(wider) == 0.0
    finally:
        later.close()
