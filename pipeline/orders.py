"""One photo's way to a paid order: upload, submit under the order window, record.

The rule that keeps a user from paying twice: ``submitting`` is committed to the ledger before
the order POST leaves, and a POST whose answer is lost is never sent again blindly. The order's
details decide: still idle with no generated images means it was never submitted; anything else
means it was. Before asking, we let the API settle (``settle_seconds``), because a request that
timed out on our side may still be running on the server's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.catalog import ResolvedOptions
from pipeline.client import ApiClient, OrderDetails
from pipeline.errors import (
    ApiError,
    AuthRefused,
    OutcomeUnknown,
    PhotoError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from pipeline.groupcommit import GroupCommit
from pipeline.ledger import Ledger, PhotoRow, State
from pipeline.limiter import OrderWindow
from pipeline.retry import Backoff, retrying

_MAX_RATE_LIMITED = 20  # 429s in a row for one photo before it is left for the next run


class OrderBudgetSpent(Exception):
    """``--max-orders`` is reached: no further order POST may be sent in this run."""


@dataclass(slots=True)
class RunCounters:
    """What this run did, for the progress line and the summary."""

    uploads: int = 0
    orders_posted: int = 0
    orders_accepted: int = 0
    outcomes_unknown: int = 0
    reconciled_submitted: int = 0
    reconciled_idle: int = 0
    retries: int = 0
    rate_limited: int = 0


class OrderFlow:
    """Takes one ledger row from wherever it stands to ``submitted`` (or ``failed``)."""

    def __init__(
        self,
        client: ApiClient,
        ledger: Ledger,
        writes: GroupCommit,
        window: OrderWindow,
        backoff: Backoff,
        counters: RunCounters,
        *,
        options_for: Callable[[PhotoRow], ResolvedOptions | None],
        max_orders: int | None = None,
        settle_seconds: float = 120.0,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._writes = writes  # every ledger change of a run goes through it
        self._window = window
        self._backoff = backoff
        self._counters = counters
        self._options_for = options_for
        self._max_orders = max_orders
        self._settle_seconds = settle_seconds
        self._upload_seconds = 1.0  # moving average, to upload just ahead of a slot
        self._rng = random.Random()
        self._in_flight: set[asyncio.Future[tuple[PhotoRow, bool]]] = set()

    async def process(self, row: PhotoRow) -> PhotoRow:
        options = self._options_for(row)
        if options is None:
            return await self._writes.call(
                self._ledger.mark_failed,
                row.id,
                "its folder or options are no longer in the manifest; run it with that manifest",
                retryable=True,
            )
        if row.state is State.SUBMITTING:
            # Left by a killed run: its POST may still be running on the server's side, so
            # let it settle for what remains of settle_seconds since the intent was recorded.
            row = await self._reconcile(row, settle=self._settle_seconds - _age_seconds(row))
        reuploaded = False
        rate_limited = 0
        unreachable = 0
        while row.state in (State.PENDING, State.UPLOADED):
            fresh: str | None = None
            uploaded_now = row.state is State.PENDING or row.order_id is None
            if uploaded_now:
                row, fresh = await self._upload(row)
            try:
                row = await self._submit(row, options, fresh_order_id=fresh, queued=uploaded_now)
                continue
            except (RateLimited, TransientError, RequestRejected) as exc:
                failure: ApiError = exc
            row = self._ledger.get(row.id)  # _submit recorded the order id before raising
            if isinstance(failure, RateLimited):
                rate_limited += 1
                if rate_limited >= _MAX_RATE_LIMITED:
                    return await self._writes.call(
                        self._ledger.mark_failed,
                        row.id,
                        "rate-limited again and again (429)",
                        retryable=True,
                    )
            elif isinstance(failure, TransientError):
                # The order POST could not connect: nothing was sent, try again after a pause.
                unreachable += 1
                if unreachable >= self._backoff.attempts:
                    raise failure
                wait = self._backoff.wait_before(unreachable, self._rng)
                self._on_retry(failure, unreachable, wait)
                await asyncio.sleep(wait)
            elif failure.status == 404 and not reuploaded:
                # The uploaded order is unknown to the API (expired or from another
                # account): nothing was charged, so upload the photo afresh, once.
                reuploaded = True
                row = await self._writes.call(self._ledger.mark_pending, row.id)
            else:
                return await self._writes.call(
                    self._ledger.mark_failed, row.id, failure.reason, retryable=False
                )
        return row

    # -- steps --------------------------------------------------------------------------------

    async def _upload(self, row: PhotoRow) -> tuple[PhotoRow, str | None]:
        """Upload; the new order id is recorded now if the photo must wait for its slot,
        else returned, to be recorded with the intent to submit in one commit."""
        await self._window.wait_for_upload_turn(lead_seconds=2 * self._upload_seconds + 0.5)
        started = time.monotonic()
        try:
            order_id = await retrying(
                lambda: self._client.upload(row.path, row.service),
                self._backoff,
                on_retry=self._on_retry,
            )
        except OSError as exc:
            # Moved, deleted or made unreadable since the scan: nothing was spent on it.
            self._window.leave_queue()
            raise PhotoError(Path(row.path), f"cannot read: {exc.strerror or exc}") from exc
        except BaseException:
            self._window.leave_queue()
            raise
        self._upload_seconds = 0.8 * self._upload_seconds + 0.2 * (time.monotonic() - started)
        self._counters.uploads += 1
        if self._window.seconds_to_next_slot() > 0:
            return await self._writes.call(self._ledger.mark_uploaded, row.id, order_id), None
        return row, order_id

    async def _submit(
        self,
        row: PhotoRow,
        options: ResolvedOptions,
        *,
        fresh_order_id: str | None,
        queued: bool,
    ) -> PhotoRow:
        """POST the order in its slot; ``queued``: wait_for_upload_turn counted this photo."""
        order_id = fresh_order_id or row.order_id
        assert order_id is not None
        async with self._window.slot(queued=queued):
            if self._max_orders is not None and self._counters.orders_posted >= self._max_orders:
                if fresh_order_id is not None:
                    await self._writes.call(self._ledger.mark_uploaded, row.id, fresh_order_id)
                raise OrderBudgetSpent
            self._counters.orders_posted += 1  # counted now: the budget check above is exact
            # The intent, the POST and its record run as their own task: a stop that cancels
            # this worker (Ctrl-C, a budget) waits for it in drain(), so an intent on disk is
            # followed by its POST, and an answered order is recorded.
            posting = asyncio.ensure_future(self._post(row, fresh_order_id, order_id, options))
            self._in_flight.add(posting)
            posting.add_done_callback(self._in_flight.discard)
            row, unknown = await asyncio.shield(posting)
        if unknown:
            return await self._reconcile(row, settle=self._settle_seconds)
        return row

    async def _post(
        self, row: PhotoRow, fresh_order_id: str | None, order_id: str, options: ResolvedOptions
    ) -> tuple[PhotoRow, bool]:
        """Record the intent, send one order, record its answer; True when it was lost."""
        try:
            # Intent before spending: this commit is on disk before the POST leaves.
            row = await self._writes.call(self._ledger.mark_submitting, row.id, fresh_order_id)
        except Exception:
            self._counters.orders_posted -= 1  # not written (refused): nothing was sent
            raise
        try:
            done = await self._client.submit(order_id, options.space.name, options.selected_widgets)
        except RateLimited:
            # A 429 is a refusal, not a charge: the order is still only uploaded.
            self._counters.rate_limited += 1
            self._window.rate_limited_answer()
            await self._writes.call(self._ledger.mark_uploaded, row.id, order_id)
            raise
        except OutcomeUnknown:
            self._counters.outcomes_unknown += 1
            return row, True
        except (TransientError, RequestRejected, AuthRefused):
            # Never connected, or refused with a status: nothing was charged.
            await self._writes.call(self._ledger.mark_uploaded, row.id, order_id)
            raise
        self._window.accepted_answer()
        self._counters.orders_accepted += 1
        image_id = done.image_id or None
        return await self._writes.call(
            self._ledger.mark_submitted, row.id, image_id, done.eta
        ), False

    async def drain(self, within_seconds: float) -> None:
        """Wait for order POSTs already sent, so their answers reach the ledger."""
        if not self._in_flight:
            return
        done, _ = await asyncio.wait(set(self._in_flight), timeout=within_seconds)
        for posting in done:
            if not posting.cancelled():
                posting.exception()  # seen here: its worker was stopped before it could look

    async def _reconcile(self, row: PhotoRow, *, settle: float) -> PhotoRow:
        """A POST's outcome is unknown: let the order's details decide, never a blind re-POST."""
        assert row.order_id is not None
        order_id = row.order_id
        if settle > 0:
            await asyncio.sleep(settle)
        try:
            details: OrderDetails = await retrying(
                lambda: self._client.order(order_id), self._backoff, on_retry=self._on_retry
            )
        except RequestRejected as exc:
            # The API does not know the order: it was not charged under this id.
            self._counters.reconciled_idle += 1
            if exc.status == 404:
                return await self._writes.call(self._ledger.mark_pending, row.id)
            raise
        if details.never_submitted:
            self._counters.reconciled_idle += 1
            return await self._writes.call(self._ledger.mark_uploaded, row.id, order_id)
        self._counters.reconciled_submitted += 1
        return await self._writes.call(self._ledger.mark_submitted, row.id, None, None)

    def _on_retry(self, exc: ApiError, attempt: int, wait: float) -> None:
        self._counters.retries += 1
        if isinstance(exc, RateLimited):
            self._counters.rate_limited += 1


def _age_seconds(row: PhotoRow) -> float:
    """Seconds since the row last changed (for a submitting row: since the intent)."""
    try:
        changed = datetime.fromisoformat(row.updated_at)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - changed).total_seconds())
