"""Settling lost answers: an order POST whose answer may have followed a charge is settled by
the order's own details, never by a blind re-POST.

The part of ``OrderFlow`` (flow.py) that decides what became of a POST answered with a 5xx (of
any body), a reset or a timeout, or left by a killed run: the photo is ``unknown`` meanwhile.
The order's details are read soon (a read is free: a charge they show is recorded at once),
then every few seconds. The order is posted again only once they said "not received" (idle,
no generated images, no process) at every read for the whole settle time, counted on the boot
clock from the latest moment the POST may have left: its intent plus ``send_within``, or, when
the POST was answered with an HTTP status (a 5xx, a 3xx, a body not JSON) sooner than that,
the answer's arrival, since the request had reached the server (or a proxy before it) by then.
The details may lag a charge, and a request may still run on the server's side. An order the API
does not know, or whose details cannot be read, stays ``unknown``: held, shown, never ordered
again by itself; the next run reads it again.

No answer is trusted as "nothing was done" sooner: the API notes document no 5xx that means
so (see transport.py). A settler is a task of its own, not a worker: a lost answer holds no
worker and no slot but its own.
"""

from __future__ import annotations

__all__ = [
    "FIRST_LOOK_SECONDS",
    "LOOK_EVERY_SECONDS",
    "OUTCOME_UNKNOWN",
    "UNREADABLE",
    "Dispatch",
    "Settling",
]

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.api.interface import PhotoApi
from pipeline.api.records import OrderDetails
from pipeline.bootclock import boot_seconds
from pipeline.errors import (
    ApiError,
    AuthRefused,
    ClaimLost,
    RateLimited,
    RequestRejected,
    SubmitRefused,
)
from pipeline.ledger import LastPost, Ledger, PhotoRow, State
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.retry import Backoff, retrying

if TYPE_CHECKING:
    from pipeline.ordering.flow import OrderBudget, RunCounters

log = logging.getLogger("aihd")

FIRST_LOOK_SECONDS = 2.0  # a read is free: a charge the details show is recorded this soon
LOOK_EVERY_SECONDS = 5.0  # then a read this often (the API notes: poll an order every 5 s)

OUTCOME_UNKNOWN = (
    "outcome unknown: the API no longer knows order {order_id}, whose answer was lost; it may "
    "have been charged. Check with AI HomeDesign's support; the reorder command orders it again"
)
UNREADABLE = (
    "outcome unknown: the details of order {order_id} could not be read ({error}); it may have "
    "been charged: the next run reads them again"
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
    budget: OrderBudget
    _settle_seconds: float
    _settling: dict[asyncio.Task[None], float]
    _posts: Counter[int]
    _fences: dict[int, int | None]
    _unconfirmed: set[int]
    _answered: dict[int, float]

    # -- settling lost answers ------------------------------------------------------------------

    @property
    def settling(self) -> int:
        return len(self._settling)

    def seconds_to_next_settle(self) -> float | None:
        if not self._settling:
            return None
        return max(0.0, min(self._settling.values()) - time.monotonic())

    def _settle_left(self, last: LastPost | None, answered: float | None) -> float | None:
        """What remains of the settle time since the latest moment the photo's last POST may
        have left; None when that cannot be told on this boot's clock (a reboot, another
        machine, an older ledger): then the whole settle time is waited from now.

        ``answered``: when this run's POST of the photo got an HTTP answer, on the boot clock.
        The request had reached the server before its answer came, so the POST left by then
        too, whichever reading of a 5xx holds (the API's own error after a charge, or a
        gateway's 502/504 while the API still runs the request): the settle time then counts
        from the earlier of the two. A POST that got no answer (a reset, a timeout) counts from
        its intent plus ``send_within`` only, since its bytes may still have been on their way.
        """
        age = None if last is None else last.sent_by.age()
        if answered is not None:
            since_answer = boot_seconds() - answered
            age = since_answer if age is None else max(age, since_answer)
        return None if age is None else max(0.0, self._settle_seconds - age)

    def _settle_later(self, row: PhotoRow) -> None:
        settler = asyncio.create_task(self._settle(row), name=f"settle-{row.id}")
        left = self._settle_left(self._ledger.last_post(row.id), self._answered.get(row.id))
        self._settling[settler] = time.monotonic() + (
            self._settle_seconds if left is None else left
        )
        settler.add_done_callback(self._settling.pop)

    async def _settle(self, row: PhotoRow) -> None:
        """Settle the photo's POST from its order's details; then hand the photo back to the
        workers (never received: post it again) or close it (charged, or still unknown)."""
        try:
            row = await self._reconcile(row)
        except asyncio.CancelledError:
            raise
        except SubmitRefused as exc:
            # Another run holds the photo now (this run was paused past its lease), or it
            # moved on: settling it, and any order of it, is that run's.
            log.info("%s", exc)
            self.budget.settle(row.id, spent=True)
            self._dispatch.settled(row.id)
            return
        except ApiError as exc:
            if isinstance(exc, AuthRefused):
                self._dispatch.fatal(exc)
                return
            # The order's details could not be read: still unknown, read again next run.
            assert row.order_id is not None
            reason = UNREADABLE.format(order_id=row.order_id, error=exc)
            await self._writes.call(self._ledger.mark_unknown, row.id, reason)
            self.budget.settle(row.id, spent=True)
            self._dispatch.settled(row.id)
            return
        except BaseException as exc:
            self._dispatch.fatal(exc)
            return
        if row.state is State.UPLOADED:
            self._confirmed(row.id)
            if self._posts[row.id] >= self._backoff.attempts:
                # Answered with errors (5xx, 3xx), and "not received" for the whole settle
                # time after each: the API did not take it, again and again.
                await self._fail(
                    row,
                    f"the API did not take the order after {self._posts[row.id]} tries; "
                    "its details showed it not received each time, so nothing was charged; "
                    "the next run tries again",
                    True,
                )
                self.budget.settle(row.id, spent=False)
                self._dispatch.settled(row.id)
                return
            self._dispatch.requeue(row.id)  # keeps its budget reservation
            return
        self.budget.settle(row.id, spent=True)  # charged, or may have been
        self._dispatch.settled(row.id)

    async def _reconcile(self, row: PhotoRow) -> PhotoRow:
        """A POST's outcome is unknown: let the order's details decide, never a blind re-POST.

        A charge shows at any read. "Not received" is trusted only when every read said so and
        the last one came the whole settle time after the POST may have left.
        """
        assert row.order_id is not None
        order_id = row.order_id
        last = self._ledger.last_post(row.id)
        answered = self._answered.pop(row.id, None)  # this POST's own: a repost records anew
        # Where the POST's time cannot be told on this boot's clock, the settle time counts
        # from now (on this boot's clock, which counts a suspend: a laptop's sleep too).
        fallback = boot_seconds() + self._settle_seconds

        def left() -> float:
            remaining = self._settle_left(last, answered)
            return max(0.0, fallback - boot_seconds()) if remaining is None else remaining

        wait = min(FIRST_LOOK_SECONDS, left())
        while True:
            if wait > 0:
                await asyncio.sleep(wait)
            details = await self._details(order_id, row.service)
            if details is None:
                # The API does not know the order it may have charged: held, never re-ordered.
                reason = OUTCOME_UNKNOWN.format(order_id=order_id)
                return await self._writes.call(self._ledger.mark_unknown, row.id, reason)
            if not details.never_submitted:
                self._counters.reconciled_submitted += 1
                self._confirmed(row.id)
                # v3: the order shows the process it was charged for; its id is adopted.
                adopted = details.processes[-1] if details.processes else None
                return await self._writes.call(self._ledger.mark_submitted, row.id, adopted, None)
            if (remaining := left()) <= 0:
                self._counters.reconciled_idle += 1
                post_id = None if last is None else last.id
                return await self._writes.call(
                    self._ledger.mark_not_received, row.id, post_id, fence=self._fences.get(row.id)
                )
            wait = min(LOOK_EVERY_SECONDS, remaining)

    def _confirmed(self, photo_id: int) -> None:
        """This run's POST of the photo is settled either way: no longer "may have charged"."""
        self._unconfirmed.discard(photo_id)
        self._counters.unconfirmed = len(self._unconfirmed)

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
        """Fail the photo, if this run's claim on it still holds (else it is another run's)."""
        try:
            return await self._writes.call(
                self._ledger.mark_failed,
                row.id,
                reason,
                retryable=retryable,
                fence=self._fences.get(row.id),
            )
        except ClaimLost as exc:
            log.info("%s", exc)
            return self._ledger.get(row.id)

    def _on_retry(self, exc: ApiError, attempt: int, wait: float) -> None:
        self._counters.retries += 1
        if isinstance(exc, RateLimited):
            self._counters.rate_limited += 1
