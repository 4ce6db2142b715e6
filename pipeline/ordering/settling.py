"""Settling lost answers: an order POST whose answer was lost is settled by the order's details.

The part of ``OrderFlow`` (flow.py) that waits for a lost answer to settle, reads the order's
details and decides: charged, never submitted (post it again), or unknown. A settler is a task
of its own, not a worker: a lost answer holds no worker and no slot but its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.api.interface import PhotoApi
from pipeline.api.records import OrderDetails
from pipeline.errors import ApiError, AuthRefused, RateLimited, RequestRejected
from pipeline.ledger import Ledger, PhotoRow, State
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.retry import Backoff, retrying

if TYPE_CHECKING:
    from pipeline.ordering.flow import RunCounters, _Budget

# After the API itself answered an order POST with an error, its handler has ended: the order's
# details are read after this short pause (twice, this far apart, before an idle order is posted
# again), not after the full settle time a request that may still be running needs.
QUICK_SETTLE_SECONDS = 2.0

OUTCOME_UNKNOWN = (
    "outcome unknown: the API no longer knows order {order_id}, whose answer was lost; it may "
    "have been charged. Check with AI HomeDesign's support; `aihd reorder` orders it again"
)


class Dispatch:
    """What a settler tells the runner once a lost answer is settled."""

    def __init__(
        self,
        requeue: Callable[[int], None],
        settled: Callable[[int], None],
        fatal: Callable[[BaseException], None],
    ) -> None:
        self.requeue = requeue  # the order was never submitted: post it again
        self.settled = settled  # charged, or failed with a reason
        self.fatal = fatal  # the key was refused, or a bug: stop the run


class Settling:
    """The settling half of ``OrderFlow``, which sets these attributes."""

    _client: PhotoApi
    _ledger: Ledger
    _writes: GroupCommit
    _backoff: Backoff
    _counters: RunCounters
    _dispatch: Dispatch
    budget: _Budget
    _settle_seconds: float
    _quick_settle: float
    _settling: dict[asyncio.Task[None], float]
    _posts: Counter[int]
    _answered_lost: set[int]

    # -- settling lost answers ------------------------------------------------------------------

    @property
    def settling(self) -> int:
        return len(self._settling)

    def seconds_to_next_settle(self) -> float | None:
        if not self._settling:
            return None
        return max(0.0, min(self._settling.values()) - time.monotonic())

    def _settle_left(self, row: PhotoRow) -> float:
        """What remains of the settle time since the photo's intent; all of it when the
        intent's age cannot be told on this boot's clock (a reboot, an older ledger)."""
        intent = self._ledger.last_intent(row.id)
        age = None if intent is None else intent.age()
        return self._settle_seconds if age is None else max(0.0, self._settle_seconds - age)

    def _settle_later(self, row: PhotoRow, delay: float) -> None:
        settler = asyncio.create_task(self._settle(row, delay), name=f"settle-{row.id}")
        self._settling[settler] = time.monotonic() + delay
        settler.add_done_callback(self._settling.pop)

    async def _settle(self, row: PhotoRow, delay: float) -> None:
        """Read the order's details soon (a read is free); post again only if they show it
        idle after ``delay`` (the rest of the settle time, when the request may still run)."""
        try:
            first = min(delay, self._quick_settle)
            if first > 0:
                await asyncio.sleep(first)
            row = await self._reconcile(row, idle_wait=delay - first)
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            if isinstance(exc, AuthRefused):
                self._dispatch.fatal(exc)
                return
            # The order's details could not be read: still unknown, asked again next run.
            await self._fail(row, f"outcome not confirmed yet: {exc}", True)
            self.budget.settle(row.id, spent=True)
            self._dispatch.settled(row.id)
            return
        except BaseException as exc:
            self._dispatch.fatal(exc)
            return
        if row.state is State.UPLOADED:
            if self._posts[row.id] >= self._backoff.attempts:
                # Answered with errors (5xx, 3xx) and never charged, again and again.
                await self._fail(
                    row,
                    f"the API did not take the order after {self._posts[row.id]} tries; "
                    "nothing was charged; the next run tries again",
                    True,
                )
                self.budget.settle(row.id, spent=False)
                self._dispatch.settled(row.id)
                return
            self._dispatch.requeue(row.id)  # keeps its budget reservation
            return
        self.budget.settle(row.id, spent=True)  # charged, or may have been
        self._dispatch.settled(row.id)

    async def _reconcile(self, row: PhotoRow, *, idle_wait: float) -> PhotoRow:
        """A POST's outcome is unknown: let the order's details decide, never a blind re-POST.

        Charged shows at the first read. Idle is trusted only after ``idle_wait`` more seconds
        and a second read: at least a short pause (two idle reads apart, in case the details lag
        behind a charge; the API notes do not say), and the full settle time when the request
        may still be running on the server's side.
        """
        assert row.order_id is not None
        order_id = row.order_id
        details = await self._details(order_id, row.service)
        if details is not None and details.never_submitted:
            answered = row.id in self._answered_lost
            self._answered_lost.discard(row.id)
            wait = max(idle_wait, self._quick_settle) if not answered else self._quick_settle
            await asyncio.sleep(wait)
            details = await self._details(order_id, row.service)
        if details is None:
            # The API does not know the order it may have charged: never re-ordered by itself.
            self._counters.unconfirmed += 1
            return await self._fail(row, OUTCOME_UNKNOWN.format(order_id=order_id), False)
        if details.never_submitted:
            self._counters.reconciled_idle += 1
            return await self._writes.call(self._ledger.mark_uploaded, row.id, order_id)
        self._counters.reconciled_submitted += 1
        # v3: the order shows the process it was charged for; its id is adopted (v1: none).
        adopted = details.processes[-1] if details.processes else None
        return await self._writes.call(self._ledger.mark_submitted, row.id, adopted, None)

    async def _details(self, order_id: str, service: str) -> OrderDetails | None:
        """The order's details, read with retries; None when the API does not know it."""
        try:
            return await retrying(
                lambda: self._client.order(order_id, service),
                self._backoff,
                on_retry=self._on_retry,
            )
        except RequestRejected as exc:
            if exc.status != 404:
                raise
            return None

    async def _fail(self, row: PhotoRow, reason: str, retryable: bool) -> PhotoRow:
        return await self._writes.call(
            self._ledger.mark_failed, row.id, reason, retryable=retryable
        )

    def _on_retry(self, exc: ApiError, attempt: int, wait: float) -> None:
        self._counters.retries += 1
        if isinstance(exc, RateLimited):
            self._counters.rate_limited += 1
