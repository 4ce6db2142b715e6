"""What a run shows while it works: a tqdm bar on a terminal, a log line now and then otherwise."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from pipeline.ordering.flow import RunCounters
from pipeline.ordering.window import OrderWindow

log = logging.getLogger("aihd")


class Settling(Protocol):
    """Lost answers waiting to be settled by the order's details."""

    @property
    def settling(self) -> int: ...
    def seconds_to_next_settle(self) -> float | None: ...


class Progress:
    """Photos settled of found, orders spent, and when the next order slot opens."""

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
        self.found = 0
        self.settled = 0
        self.settling: Settling | None = None
        self._bar: tqdm[Any] | None = (
            tqdm(total=0, unit="photo", file=stream, dynamic_ncols=True, leave=True)
            if bar
            else None
        )

    def add_found(self, count: int) -> None:
        self.found += count
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
        if self.settling is not None and self.settling.settling:
            due = self.settling.seconds_to_next_settle() or 0.0
            figures += f", {self.settling.settling} orders settling, {due:.0f} s"
        return figures
