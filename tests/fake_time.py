"""An asyncio event loop whose clock is fake and jumps ahead whenever every task is waiting.

Only for property tests of pure components (tests/test_limiter_properties.py): asyncio's own
timers, locks, events and ``wait_for`` run unchanged, but a 600 s window passes at once and a
run is the same whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import math
import selectors


class Stalled(Exception):
    """Nothing is ready and no timer is set: every task waits for something that never comes."""


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start


class _JumpWhenIdle(selectors.SelectSelector):
    """Polls without blocking; where the loop would sleep until its next timer, jumps past it.

    The clock moves on at every turn of the loop, by one step of the float at least, as a real
    one does: a timer due "now" is then past, and a wait of a few ulps cannot spin for ever.
    """

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is None:
            raise Stalled("every task waits and no timer is set")
        jump = timeout if timeout and not ready else 0.0
        self._clock.now = math.nextafter(self._clock.now + jump, math.inf)
        return ready


class FakeTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is the fake clock; use it as the clock of the component under test."""

    def __init__(self, start: float = 1000.0) -> None:
        self._fake_clock = _Clock(start)
        super().__init__(_JumpWhenIdle(self._fake_clock))
        # A timer runs once the clock is past it, not up to a real clock's resolution early:
        # early, it would run with the clock unmoved and a wait of 1e-13 s could loop for ever.
        self._clock_resolution = 0.0

    def time(self) -> float:
        return self._fake_clock.now
