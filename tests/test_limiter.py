"""The order window keeps the API's pace exactly: a sliding log, not a bucket."""

from __future__ import annotations

import asyncio
import itertools
import time

from pipeline.ordering.window import OrderWindow


def _in_any_window(times: list[float], per_seconds: float) -> int:
    """The most orders found in any span of ``per_seconds`` (what the API would count)."""
    times = sorted(times)
    most = 0
    for i, start in enumerate(times):
        most = max(most, sum(1 for t in times[i:] if t < start + per_seconds))
    return most


async def _send(window: OrderWindow, count: int, latency: float, workers: int) -> list[float]:
    sent: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            async with window.slot():
                sent.append(time.monotonic())
                await asyncio.sleep(latency)  # the order POST in flight

    await asyncio.gather(*(worker() for _ in range(workers)))
    return sent


def test_never_more_than_the_window_allows_in_any_span() -> None:
    """12 orders at 4 per 0.4 s: the 5th waits for the 1st to leave the window."""
    window = OrderWindow(4, 0.4)
    sent = asyncio.run(_send(window, 12, latency=0.02, workers=6))
    assert len(sent) == 12
    # A bucket refilling 1 per 0.1 s would have let 7 through in the first 0.4 s. (That the
    # window is also used to the full is a property on a fake clock: no speed asserted here.)
    assert _in_any_window(sent, 0.4) <= 4


def test_an_order_in_flight_counts_until_its_answer() -> None:
    """Spacing is measured from answers, so slow answers cannot bunch orders at the server."""
    window = OrderWindow(1, 0.2)
    sent = asyncio.run(_send(window, 3, latency=0.15, workers=3))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap >= 0.2 + 0.15 - 0.01 for gap in gaps), gaps


def test_a_429_pauses_every_submission() -> None:
    """After a 429 the next slot waits at least one slot's share of the window."""

    async def scenario() -> float:
        window = OrderWindow(10, 1.0)
        async with window.slot():
            window.rate_limited_answer()
        started = time.monotonic()
        async with window.slot():
            pass
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.09  # at least one slot's share: 1.0 / 10


def test_uploads_wait_until_their_slot_is_near() -> None:
    """With the window full, the next photo's upload turn comes just before its slot."""

    async def scenario() -> tuple[float, float]:
        window = OrderWindow(1, 0.5)
        async with window.slot():
            started = time.monotonic()  # before the answer, from which the window counts
        await window.wait_for_upload_turn(lead_seconds=0.1)
        upload_turn = time.monotonic() - started
        async with window.slot(queued=True):
            slot = time.monotonic() - started
        return upload_turn, slot

    upload_turn, slot = asyncio.run(scenario())
    assert 0.4 <= upload_turn <= slot
    assert slot >= 0.5


def test_next_slot_is_now_while_the_window_has_room() -> None:
    """No wait is planned while fewer than `orders` answers lie in the window."""
    window = OrderWindow(3, 60)
    assert window.seconds_to_next_slot() == 0


def test_a_429_while_the_window_is_full_in_flight_pauses_at_most_a_window() -> None:
    """A 429 with `orders` POSTs in flight (here its own) ends its pause within a window."""

    async def scenario() -> float:
        window = OrderWindow(1, 60)
        async with window.slot():
            window.rate_limited_answer()
            in_flight = window.seconds_to_next_slot()
        assert in_flight <= 60
        return window.seconds_to_next_slot()

    assert asyncio.run(scenario()) <= 60


def test_a_window_starts_from_the_orders_an_earlier_run_spent() -> None:
    """Ten answers remembered from 1 s ago fill 10 per 600 s until they leave the window."""
    window = OrderWindow(10, 600)
    now = time.monotonic()
    window.remember([now - 1] * 9 + [now - 700])  # the last left the window long ago
    assert window.next_slot() >= now  # nine of ten: room
    window.remember([now - 1])
    assert window.next_slot() == now - 1 + 600


def test_a_remembered_answer_holds_its_slot_until_it_expires() -> None:
    """A slot is granted only once the earlier run's answers are `per_seconds` old."""

    async def scenario() -> float:
        window = OrderWindow(2, 0.3)
        answered = time.monotonic()
        window.remember([answered, answered])
        async with window.slot():
            return time.monotonic() - answered

    assert asyncio.run(scenario()) >= 0.3


def test_a_slot_given_back_unused_is_free_at_once() -> None:
    """Another process took the account's slot first: ours was not spent, so it is not kept."""

    async def scenario() -> float:
        window = OrderWindow(1, 600)
        async with window.slot() as slot:
            slot.unused()
        started = time.monotonic()
        async with window.slot():
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 600  # a spent slot would hold the next for the window
