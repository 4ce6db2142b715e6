"""Retries of transient failures: capped exponential backoff with full jitter.

Only calls that are safe to repeat go through here (uploads, reads, downloads). The order POST
never does: its failures are reconciled through the order's details instead.
"""

from __future__ import annotations

__all__ = ["Backoff", "RetryHook", "T", "retrying"]

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pipeline.errors import ApiError, RateLimited, TransientError

T = TypeVar("T")

RetryHook = Callable[[ApiError, int, float], None]
_JITTER = random.Random()  # one for the process: seeding one per call costs more than the call


@dataclass(frozen=True, slots=True)
class Backoff:
    """``attempts`` tries in all; waits drawn from [0, min(wait_max, wait_initial * 2**n)]."""

    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 60.0

    def wait_before(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): spreads retries of many photos apart."""
        ceiling = min(self.wait_max, self.wait_initial * 2 ** (retry_number - 1))
        return rng.uniform(0.0, ceiling)


async def retrying(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    on_retry: RetryHook | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``call``, retrying TransientError and RateLimited; anything else propagates at once."""
    rng = rng or _JITTER
    attempt = 1
    while True:
        try:
            return await call()
        except (TransientError, RateLimited) as exc:
            if attempt >= backoff.attempts:
                raise
            wait = backoff.wait_before(attempt, rng)
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            await asyncio.sleep(wait)
            attempt += 1
