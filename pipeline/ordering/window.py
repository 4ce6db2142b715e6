"""The order window: an exact sliding-window log of ``orders`` per ``per_seconds``.

A token or leaky bucket is wrong for this API: a bucket of 10 refilling one a minute lets 19
orders through in the first ten minutes, and the API answers the 11th with 429. The log instead
remembers when each order was accepted and lets the next one go only when fewer than ``orders``
of them lie within the last ``per_seconds``.

Each order's time is recorded as the moment its answer came back: the server charged it
somewhere between send and answer, so the answer's time is an upper bound, and spacing sends
``per_seconds`` after it can never look too close to the server, whatever the latency jitter.
An order still in flight counts as "not yet expired" until its answer comes. Only sending waits
for that answer; a pause or an estimate counts the order as answered now (the earliest it can
be), so neither is ever endless.
"""

from __future__ import annotations

__all__ = ["Clock", "OrderWindow", "Slot"]

import asyncio
import heapq
import math
import time
from collections.abc import Callable, Iterable
from contextlib import suppress

Clock = Callable[[], float]
_TIDY_SLACK = 64  # see _live


class Slot:
    """A granted slot; ``unused()`` gives it back when no order POST was sent in it (another
    process of the account took the account's slot first)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = True

    def unused(self) -> None:
        self.sent = False


class SlotHold:
    """What ``OrderWindow.slot`` returns: a class, not an ``@asynccontextmanager``, whose layers
    cost a photo more than the slot's own work."""

    __slots__ = ("_held", "_number", "_queued", "_window")

    def __init__(self, window: OrderWindow, queued: bool) -> None:
        self._window = window
        self._queued = queued
        self._number = 0
        self._held = Slot()

    async def __aenter__(self) -> Slot:
        self._number = await self._window._take_slot(self._queued)
        return self._held

    async def __aexit__(self, *exc_info: object) -> None:
        self._window._give_slot(self._number, self._held)


class OrderWindow:
    """Lets order POSTs through at the account's pace, first come first served."""

    def __init__(self, orders: int, per_seconds: float, *, clock: Clock = time.monotonic) -> None:
        if orders < 1 or per_seconds <= 0:
            raise ValueError(
                f"an order window needs orders >= 1 and per_seconds > 0, got "
                f"{orders} per {per_seconds}"
            )
        self.orders = orders
        self.per_seconds = per_seconds
        self._clock = clock
        self._accepted: dict[int, float] = {}  # order number -> answer time (inf in flight)
        self._tidy_at = _TIDY_SLACK  # the log's size at which its expired entries go anyway
        self._numbered = 0
        self._queued = 0  # photos paced for upload that have not got their slot yet
        self._pace = asyncio.Lock()
        self._paused_until = 0.0
        self._rate_limited_in_a_row = 0
        self._turn = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        self._changed: asyncio.Event | None = None  # see _wait_for_change
        self.rate_limited = 0

    # -- planning (used to upload just ahead of a photo's slot, and for progress) -------------

    def next_slot(self, ahead: int = 0) -> float:
        """Clock time at which the order after ``ahead`` waiting ones may be sent (estimate)."""
        now = self._clock()
        times = self._live(now, planned=ahead + 1)
        slot = max(now, self._paused_until)
        if len(self._accepted) + ahead + 1 < self.orders:
            return slot  # room for all of them: no need to walk the log
        for _ in range(ahead + 1):
            slot = max(slot, self._earliest(times, now, in_flight_at=now))
            times.append(max(slot, now))
        return slot

    def seconds_to_next_slot(self) -> float:
        return max(0.0, self.next_slot() - self._clock())

    def seconds_for(self, orders: int) -> float:
        """How long until ``orders`` more may all have been sent, at the window's pace (the
        progress's estimate; an order in flight counts as answered now).

        Each order goes when the one ``self.orders`` places before it in the log has left the
        window. One window's places, oldest first, are the live times then ``now`` for each
        free one; the n-th order from now is at index ``i = n - 1 + live`` of the endless log,
        so it goes at ``places[i % orders] + per_seconds * (i // orders)``: no walk needed.
        """
        if orders <= 0:
            return 0.0
        now = self._clock()
        horizon = now - self.per_seconds
        live = sorted(min(t, now) for t in self._accepted.values() if t > horizon)
        live = live[-self.orders :]
        base = live + [now] * (self.orders - len(live))  # one window's places, oldest first
        index = orders - 1 + len(live)
        cycle, place = divmod(index, self.orders)
        at = base[place] + self.per_seconds * cycle
        return max(0.0, at - now, self._paused_until - now)

    async def wait_for_upload_turn(self, lead_seconds: float) -> None:
        """Wait until this photo's future order slot is at most ``lead_seconds`` away.

        Uploading hours before a slot wastes bandwidth and may let the upload go stale, so a
        photo uploads only when its slot (behind every photo already queued) is near. The photo
        is then queued until ``slot(queued=True)`` grants it, or ``leave_queue()``.
        """
        async with self._pace:
            while True:
                now = self._clock()
                start = self.next_slot(ahead=self._queued) - lead_seconds
                if start <= now:
                    break
                await self._wait_for_change(start - now)
            self._queued += 1

    def leave_queue(self) -> None:
        """A queued photo gave up (its upload failed) before asking for its slot."""
        self._queued = max(0, self._queued - 1)
        self._tell_waiters()

    # -- sending ------------------------------------------------------------------------------

    def slot(self, *, queued: bool = False) -> SlotHold:
        """``async with window.slot() as slot``: wait for a free slot, then hold it while the
        order POST is in flight.

        Leaving the block records the order as accepted now. Call ``rate_limited_answer()``
        inside the block when the API answered 429 instead.
        """
        return SlotHold(self, queued)

    async def _take_slot(self, queued: bool) -> int:
        """Wait for a free slot and take it: its number in the log (in flight until given)."""
        async with self._turn:
            while True:
                now = self._clock()
                wait = max(self._paused_until, self._earliest(self._live(now), now)) - now
                if wait <= 0:
                    break
                await self._wait_for_change(wait)
            if queued:
                self._queued = max(0, self._queued - 1)
            self._numbered += 1
            number = self._numbered
            self._accepted[number] = math.inf
            return number

    def _give_slot(self, number: int, held: Slot) -> None:
        if held.sent:
            # Whatever the outcome (answer, 429, lost), the answer's time is a safe bound.
            self._accepted[number] = self._clock()
        else:
            del self._accepted[number]  # nothing left: the slot is free again
        self._tell_waiters()

    def rate_limited_answer(self) -> None:
        """A 429 came anyway (another client on the account, or a server clock ahead of ours).

        The API gives no Retry-After, so every submission pauses until our own log frees a slot,
        and at least one slot's share of the window, doubling on 429s in a row up to the window.
        """
        self.rate_limited += 1
        self._rate_limited_in_a_row += 1
        now = self._clock()
        share = self.per_seconds / self.orders
        pause = min(self.per_seconds, share * 2 ** (self._rate_limited_in_a_row - 1))
        # Orders in flight (this one too) are answered no sooner than now: counting them as
        # answered now keeps the pause finite, and slot() still waits for their real answers.
        own = self._earliest(self._live(now), now, in_flight_at=now) - now
        self._paused_until = max(self._paused_until, now + max(pause, own))

    def accepted_answer(self) -> None:
        """An order went through: the 429 streak is over."""
        self._rate_limited_in_a_row = 0

    def remember(self, answered_at: Iterable[float]) -> None:
        """Count orders answered before this window existed (an earlier run's, from the ledger).

        ``answered_at`` are times on this window's clock; those older than ``per_seconds`` are
        ignored, and one in the future counts as now. For an order whose answer never came (a
        killed run's intent), pass when that run ended, or now.
        """
        now = self._clock()
        horizon = now - self.per_seconds
        earlier: dict[int, float] = {}
        for answered in sorted(t for t in answered_at if t > horizon):
            self._numbered += 1
            earlier[self._numbered] = min(answered, now)
        # They go first: the log keeps its entries in the order they leave the window.
        self._accepted = earlier | self._accepted
        self._tell_waiters()

    # -- the log ------------------------------------------------------------------------------

    def _tell_waiters(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_change(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if an order's answer arrives (an in-flight one frees).

        A change sets the event its waiters hold and drops it; the next waiter makes a new one.
        Clearing a shared event instead could wipe a change another waiter had not yet seen
        (before 3.12, wait_for starts the wait a loop turn later) and leave it asleep for its
        whole timeout. With no one waiting, a change costs nothing.
        """
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        with suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=min(seconds, 3600.0))

    def _live(self, now: float, planned: int = 0) -> list[float]:
        """Answer times still inside the window; [] when even ``planned`` more leave room."""
        accepted = self._accepted
        if len(accepted) + planned < self.orders and len(accepted) < self._tidy_at:
            # Room even if every entry were still inside: nothing to look at. A window far
            # wider than the run's pace leaves here; its expired entries go once the log has
            # doubled (below), so it stays small at O(1) a call.
            return []
        horizon = now - self.per_seconds
        # Entries were added in send order, so expired ones gather at the front; an order
        # still in flight (inf) there only delays forgetting, never loosens the window.
        while accepted:
            number, answered = next(iter(accepted.items()))
            if answered > horizon:
                break
            del accepted[number]
        self._tidy_at = 2 * len(accepted) + _TIDY_SLACK
        if len(accepted) + planned < self.orders:
            return []  # room in the window: the times do not matter (and are not copied)
        return [t for t in accepted.values() if t > horizon]

    def _earliest(self, live: list[float], now: float, in_flight_at: float = math.inf) -> float:
        """When the next order may go; an in-flight entry counts as answered at ``in_flight_at``."""
        if len(live) < self.orders:
            return now
        # The oldest of the newest `orders` entries must leave the window first. In-flight
        # entries (inf) are the newest, and every answered one is at most now.
        return min(heapq.nlargest(self.orders, live)[-1], in_flight_at) + self.per_seconds
