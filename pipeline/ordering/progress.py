"""What a run shows while it works: a tqdm bar on a terminal, a log line now and then otherwise."""

from __future__ import annotations

__all__ = ["Progress", "Settling"]

import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from pipeline.ordering.flow import RunCounters
from pipeline.ordering.window import OrderWindow

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("aihd")


class Settling(Protocol):
    """Lost answers waiting to be settled by the order's details."""

    @property
    def settling(self) -> int: ...
    def seconds_to_next_settle(self) -> float | None: ...


class Progress:
    """This run's photos settled of those it has to work on (photos done before are not its
    work: a re-run after Ctrl-C counts what is left), orders spent, when the next order slot
    opens, and how long the order window makes the rest take."""

    def __init__(
        self,
        *,
        bar: bool,
        stream: TextIO,
        window: OrderWindow,
        counters: RunCounters,
        log_every_seconds: float = 30.0,
    ) -> None:
        self._window = window
        self._counters = counters
        self._log_every = log_every_seconds
        self._last_log = time.monotonic()
        self.found = 0  # photos this run works on (not those done before it)
        self.done_before = 0  # photos found already done: shown apart, not in the bar
        self.settled = 0
        self.settling: Settling | None = None
        self._bar: tqdm[Any] | None = None
        if bar:
            # Imported only for a bar: tqdm's import (its version through importlib.metadata)
            # was ~50 ms of every run's start.
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="photo", file=stream, dynamic_ncols=True, leave=True)

    def add_found(self, count: int, *, done_before: int = 0) -> None:
        """``count`` photos found, of which ``done_before`` were done by an earlier run."""
        self.found += count - done_before
        self.done_before += done_before
        if self._bar is not None:
            self._bar.total = self.found
            self._bar.refresh()

    def settle(self, count: int = 1) -> None:
        self.settled += count
        if self._bar is not None:
            self._bar.update(count)
        self.tick()

    def tick(self) -> None:
        """Refresh the bar's figures, or log a line when enough time has passed."""
        if self._bar is not None:
            self._bar.set_postfix_str(self._figures(), refresh=True)
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_every:
            self._last_log = now
            log.info("%d/%d photos; %s", self.settled, self.found, self._figures())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _figures(self) -> str:
        wait = self._window.seconds_to_next_slot()
        slot = "now" if wait <= 0 else ("after an answer" if math.isinf(wait) else f"{wait:.0f}s")
        figures = f"orders {self._counters.orders_spent}, next slot {slot}"
        left = self.found - self.settled
        if left > 0:
            # Each photo left may need one order: the window sets the pace of the rest.
            figures += f", {_about(self._window.seconds_for(left))} left at the window's pace"
        if self.settling is not None and self.settling.settling:
            due = self.settling.seconds_to_next_settle() or 0.0
            figures += f", {self.settling.settling} orders settling, {due:.0f} s"
        if self.done_before:
            figures += f"; {self.done_before} done before"
        return figures


def _about(seconds: float) -> str:
    if math.isinf(seconds) or seconds < 60:
        return "under a minute" if not math.isinf(seconds) else "an unknown time"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if hours else f"about {minutes} min"
