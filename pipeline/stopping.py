"""Why a long-running command should stop: one switch that signals, budgets and fatal errors set.

A base module (it imports only asyncio): the run, collect and the CLI's signal handlers share it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["StopSwitch"]


@dataclass(slots=True)
class StopSwitch:
    """Why the run should stop: "budget", "interrupted" (a signal) or "auth"; first one wins."""

    reason: str | None = None
    error: BaseException | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def set(self, reason: str, error: BaseException | None = None) -> None:
        if self.reason is None:
            self.reason, self.error = reason, error
        self.event.set()
