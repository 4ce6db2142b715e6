"""Properties of the order window under any interleaving, on a fake clock (tests/fake_time.py).

A simulated API keeps the real one's sliding window of charges. Photos go through the window
as pipeline/ordering/flow.py sends them (upload turn, upload, slot, POST), with answers that come,
come late, are lost after the charge, fail with a 5xx or a 429 when another client on the
account took the room. Whatever Hypothesis draws, the window must keep three promises:
never more than ``orders`` slots in any ``per_seconds``, never a pause without end, and every
photo ordered once the API has room.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ordering.window import OrderWindow
from tests.fake_time import FakeTimeLoop

Outcome = Literal["answered", "lost", "5xx", "upload fails"]
ANSWER_TIMEOUT = 5.0  # seconds the client waits for an answer that never comes
# A broken window sleeps in 3600 s steps for ever: a run this long (fake seconds) never ends.
NEVER = 10_000_000.0


@dataclass(frozen=True)
class Attempt:
    """One try at a photo's order: what happens to it, and how long each leg takes."""

    outcome: Outcome
    upload_seconds: float
    send_seconds: float
    answer_seconds: float


@dataclass(frozen=True)
class Scenario:
    orders: int
    per_seconds: float
    concurrency: int
    upload_turns: bool  # photos ask wait_for_upload_turn() before uploading, as flow.py does
    photos: list[list[Attempt]]  # after its attempts, a photo's next ones are answered at once
    others_charges: list[float]  # seconds after the start when another client charges
    remembered: list[float]  # seconds before the start when an earlier run's answers came


@dataclass
class Api:
    """The API's sliding window of charges, on the same clock as the client's."""

    orders: int
    per_seconds: float
    charges: list[float] = field(default_factory=list)
    rate_limited: int = 0

    def charge(self, now: float) -> bool:
        live = sum(1 for t in self.charges if t > now - self.per_seconds)
        if live >= self.orders:
            self.rate_limited += 1
            return False
        self.charges.append(now)
        return True


SECONDS = st.floats(0.0, 2.0, allow_nan=False)
ATTEMPTS = st.builds(
    Attempt,
    st.sampled_from(["answered", "answered", "lost", "5xx", "upload fails"]),
    SECONDS,
    SECONDS,
    SECONDS,
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    orders = draw(st.integers(1, 6))
    per_seconds = draw(st.sampled_from([0.5, 3.0, 60.0, 600.0]))
    return Scenario(
        orders=orders,
        per_seconds=per_seconds,
        concurrency=draw(st.integers(1, 12)),
        upload_turns=draw(st.booleans()),
        photos=draw(st.lists(st.lists(ATTEMPTS, max_size=4), min_size=1, max_size=16)),
        others_charges=draw(
            st.lists(st.floats(0.0, 2 * per_seconds, allow_nan=False), max_size=2 * orders)
        ),
        remembered=draw(
            st.lists(st.floats(0.0, 1.5 * per_seconds, allow_nan=False), max_size=orders + 1)
        ),
    )


@dataclass
class Run:
    """What happened: the clock times the window granted slots, and each photo's charges."""

    started: float
    finished: float = 0.0
    remembered: list[float] = field(default_factory=list)  # an earlier run's, still counted
    slots: list[float] = field(default_factory=list)
    charged: dict[int, int] = field(default_factory=dict)
    attempts: int = 0
    rate_limited: int = 0


async def _run(scenario: Scenario) -> tuple[Run, Api]:
    loop = asyncio.get_running_loop()
    window = OrderWindow(scenario.orders, scenario.per_seconds, clock=loop.time)
    api = Api(scenario.orders, scenario.per_seconds)
    run = Run(started=loop.time())
    earlier = sorted(run.started - ago for ago in scenario.remembered)
    window.remember(earlier)
    api.charges += earlier  # charged no later than answered
    run.remembered = [t for t in earlier if t > run.started - scenario.per_seconds]

    def check_pause_ends() -> None:
        # Never a pause without end: whatever is in flight, the next slot is at most one
        # window away (an order in flight counts as answered no sooner than now).
        assert window.seconds_to_next_slot() <= scenario.per_seconds + 1e-9

    async def others() -> None:
        for at in sorted(scenario.others_charges):
            await asyncio.sleep(max(0.0, run.started + at - loop.time()))
            api.charge(loop.time())

    async def order(photo: int, attempt: Attempt) -> bool:
        """One try; True once the API charged the photo."""
        run.attempts += 1
        if scenario.upload_turns:
            await window.wait_for_upload_turn(lead_seconds=1.0)
        await asyncio.sleep(attempt.upload_seconds)
        if attempt.outcome == "upload fails":
            if scenario.upload_turns:
                window.leave_queue()
            return False
        try:
            async with window.slot(queued=scenario.upload_turns):
                run.slots.append(loop.time())
                check_pause_ends()
                await asyncio.sleep(attempt.send_seconds)
                if attempt.outcome == "5xx":
                    await asyncio.sleep(attempt.answer_seconds)
                    raise ConnectionError("502 from a proxy: not charged")
                charged = api.charge(loop.time())
                if charged:
                    run.charged[photo] = run.charged.get(photo, 0) + 1
                if attempt.outcome == "lost":
                    await asyncio.sleep(ANSWER_TIMEOUT)
                    return charged  # as reconciling the order's details would tell
                await asyncio.sleep(attempt.answer_seconds)
                if not charged:
                    run.rate_limited += 1
                    window.rate_limited_answer()
                    check_pause_ends()
                    return False
                window.accepted_answer()
                return True
        except ConnectionError:
            return False

    queue: asyncio.Queue[int] = asyncio.Queue()
    for photo in range(len(scenario.photos)):
        queue.put_nowait(photo)

    async def worker() -> None:
        while not queue.empty():
            photo = queue.get_nowait()
            planned = iter(scenario.photos[photo])
            while not await order(photo, next(planned, Attempt("answered", 0.1, 0.1, 0.1))):
                pass

    await asyncio.gather(others(), *(worker() for _ in range(scenario.concurrency)))
    run.finished = loop.time()
    return run, api


def _play(scenario: Scenario) -> tuple[Run, Api]:
    async def bounded() -> tuple[Run, Api]:
        return await asyncio.wait_for(_run(scenario), timeout=NEVER)

    with asyncio.Runner(loop_factory=FakeTimeLoop) as runner:
        try:
            return runner.run(bounded())
        except TimeoutError:
            raise AssertionError(
                f"the run never ended: a pause without end in {scenario}"
            ) from None


PROPERTIES = settings(
    deadline=None,  # real time means nothing here: the clock is fake
    derandomize=True,  # the same examples every run: CI is never red by luck
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTIES
@given(scenarios())
def test_never_more_slots_than_the_window_allows_in_any_span(scenario: Scenario) -> None:
    """A slot comes `per_seconds` after the `orders`-th order before it (an earlier run's too)."""
    run, _ = _play(scenario)
    own = set(run.slots)
    times = sorted(run.remembered + run.slots)
    n = scenario.orders
    spans = [
        later - earlier for earlier, later in zip(times, times[n:], strict=False) if later in own
    ]
    assert all(span >= scenario.per_seconds - 1e-9 for span in spans), (spans, scenario)


@PROPERTIES
@given(scenarios())
def test_every_photo_is_ordered_once_and_the_run_ends(scenario: Scenario) -> None:
    """Each photo is charged once, no pause is endless, and our own pace never meets a 429."""
    run, api = _play(scenario)
    assert run.charged == dict.fromkeys(range(len(scenario.photos)), 1)
    # Each slot waits at most for an answer (or its timeout), a pause and one window.
    per_slot = 2 * scenario.per_seconds + ANSWER_TIMEOUT + 3 * 2.0 + 1.0
    ends_by = 2 * scenario.per_seconds + (run.attempts + 1) * per_slot
    assert run.finished - run.started <= ends_by, (run.finished - run.started, ends_by)
    if not scenario.others_charges:
        assert api.rate_limited == 0  # the window alone keeps the API's pace


@PROPERTIES
@given(orders=st.integers(1, 8), per_seconds=st.sampled_from([0.5, 60.0, 600.0]))
def test_a_429_with_every_slot_in_flight_pauses_for_at_most_a_window(
    orders: int, per_seconds: float
) -> None:
    """A 429 while the window is full of orders in flight (its own too) ends its pause."""

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        window = OrderWindow(orders, per_seconds, clock=loop.time)
        answered = asyncio.Event()

        async def post(rate_limited: bool) -> None:
            async with window.slot():
                if rate_limited:
                    window.rate_limited_answer()
                    answered.set()
                else:
                    await answered.wait()  # still in flight when the 429 comes

        await asyncio.gather(*(post(n == orders - 1) for n in range(orders)))
        started = loop.time()
        async with window.slot():
            return loop.time() - started

    with asyncio.Runner(loop_factory=FakeTimeLoop) as runner:
        waited = runner.run(asyncio.wait_for(scenario(), timeout=NEVER))
    assert waited <= per_seconds + 1e-9


@PROPERTIES
@given(
    orders=st.integers(1, 6),
    extra_workers=st.integers(0, 6),
    photos=st.integers(1, 30),
    per_seconds=st.sampled_from([0.5, 3.0, 600.0]),
    answer_seconds=st.floats(0.0, 2.0, allow_nan=False),
)
def test_the_window_is_used_to_the_full_when_the_api_accepts(
    orders: int, extra_workers: int, photos: int, per_seconds: float, answer_seconds: float
) -> None:
    """With every answer in `answer_seconds`, batch k of `orders` slots goes at k windows."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        window = OrderWindow(orders, per_seconds, clock=loop.time)
        started = loop.time()
        slots: list[float] = []
        queue = list(range(photos))

        async def worker() -> None:
            while queue:
                queue.pop()
                async with window.slot():
                    slots.append(loop.time() - started)
                    await asyncio.sleep(answer_seconds)
                window.accepted_answer()

        await asyncio.gather(*(worker() for _ in range(orders + extra_workers)))
        return slots

    with asyncio.Runner(loop_factory=FakeTimeLoop) as runner:
        slots = runner.run(asyncio.wait_for(scenario(), timeout=NEVER))
    for n, at in enumerate(slots):
        assert at <= (n // orders) * (per_seconds + answer_seconds) + 1e-6, (n, at)


@PROPERTIES
@given(per_seconds=st.sampled_from([3.0, 60.0, 600.0]), lead_seconds=st.floats(0.0, 2.0))
def test_an_answer_wakes_a_waiting_slot_even_as_an_upload_turn_starts_waiting(
    per_seconds: float, lead_seconds: float
) -> None:
    """An answer in the same loop turn as another waiter's wait still wakes the slot's waiter."""

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        window = OrderWindow(1, per_seconds, clock=loop.time)
        go = asyncio.Event()
        granted: list[float] = []

        async def next_order() -> None:  # wakes first: waits for the one in flight
            await go.wait()
            async with window.slot():
                granted.append(loop.time())

        async def in_flight() -> None:  # wakes second: its answer comes
            async with window.slot():
                await go.wait()

        async def next_upload() -> None:  # wakes third: starts waiting for its upload turn
            await go.wait()
            await window.wait_for_upload_turn(lead_seconds=lead_seconds)

        tasks = [asyncio.ensure_future(step()) for step in (next_order, in_flight, next_upload)]
        await asyncio.sleep(0)
        started = loop.time()
        go.set()
        await asyncio.gather(*tasks)
        return granted[0] - started

    with asyncio.Runner(loop_factory=FakeTimeLoop) as runner:
        waited = runner.run(asyncio.wait_for(scenario(), timeout=NEVER))
    assert waited <= per_seconds + 1e-6
