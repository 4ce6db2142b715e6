"""One photo's way to a paid order: upload, submit under the order window, record.

The rule that keeps a user from paying twice: ``submitting`` is committed to the ledger before
the order POST leaves, and a POST whose answer is lost is never sent again blindly. The order's
details decide: still idle with no generated images means it was never submitted; anything else
means it was; an order the API does not know is failed as "outcome unknown", never re-ordered.
Before asking, the API is let settle (``settle_seconds`` since the intent, on the boot clock),
because a request that timed out on our side may still be running on the server's. That wait is
a settler's, not a worker's: a lost answer holds no worker and no slot but its own.

A charged photo is never ordered again: the ledger refuses the intent (see ``mark_submitting``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.api.interface import PhotoApi
from pipeline.api.records import OrderDetails
from pipeline.errors import (
    ApiError,
    AuthRefused,
    OrderBudgetSpent,
    OutcomeUnknown,
    PhotoChanged,
    PhotoError,
    RateLimited,
    RequestRejected,
    TransientError,
    WindowFull,
)
from pipeline.ledger import Ledger, PhotoRow, State, WindowRule
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.ordering.catalog import ResolvedOptions
from pipeline.ordering.window import OrderWindow
from pipeline.retry import Backoff, retrying

_MAX_RATE_LIMITED = 20  # 429s in a row for one photo before it is left for the next run
# After the API itself answered an order POST with an error, its handler has ended: the order's
# details are read after this short pause (twice, this far apart, before an idle order is posted
# again), not after the full settle time a request that may still be running needs.
QUICK_SETTLE_SECONDS = 2.0
_PACED_LEAD = 0.005  # seconds an upload counted in the window may start before its slot

OUTCOME_UNKNOWN = (
    "outcome unknown: the API no longer knows order {order_id}, whose answer was lost; it may "
    "have been charged. Check with AI HomeDesign's support; the reorder command orders it again"
)


@dataclass(slots=True)
class RunCounters:
    """What this run did, for the progress line and the summary."""

    uploads: int = 0
    orders_posted: int = 0  # order POSTs sent, whatever their answer
    orders_accepted: int = 0  # answered with the order: charged
    outcomes_unknown: int = 0  # answers lost; each is then settled by the order's details
    reconciled_submitted: int = 0  # lost answers (this run's or a killed run's) found charged
    reconciled_idle: int = 0  # lost answers found never submitted: not charged
    unconfirmed: int = 0  # failed as "outcome unknown": may have been charged
    found_charged: int = 0  # uploads of an earlier run the API shows submitted already
    changed_on_upload: int = 0  # photos whose bytes changed between scan and upload
    retries: int = 0
    rate_limited: int = 0

    @property
    def orders_spent(self) -> int:
        """Orders this run paid for, as far as the API has confirmed."""
        return self.orders_accepted + self.reconciled_submitted


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


class _Budget:
    """``--max-orders``: a photo reserves an order before its upload, so a run never uploads
    photos it will not order, and stops as soon as its last order is answered."""

    def __init__(self, max_orders: int | None) -> None:
        self.max_orders = max_orders
        self._holders: set[int] = set()
        self.used = 0

    def reserve(self, photo_id: int) -> None:
        if self.max_orders is None or photo_id in self._holders:
            return
        if self.used + len(self._holders) >= self.max_orders:
            raise OrderBudgetSpent
        self._holders.add(photo_id)

    def settle(self, photo_id: int, *, spent: bool) -> None:
        """The photo's order is charged (or may be: ``spent``), or it ended without one."""
        if photo_id in self._holders:
            self._holders.discard(photo_id)
            self.used += spent

    @property
    def spent(self) -> bool:
        return self.max_orders is not None and self.used >= self.max_orders


class OrderFlow:
    """Takes one ledger row from wherever it stands to ``submitted`` (or ``failed``)."""

    def __init__(
        self,
        client: PhotoApi,
        ledger: Ledger,
        writes: GroupCommit,
        window: OrderWindow,
        backoff: Backoff,
        counters: RunCounters,
        dispatch: Dispatch,
        *,
        options_for: Callable[[PhotoRow], ResolvedOptions | None],
        max_orders: int | None = None,
        settle_seconds: float = 120.0,
        account_window: WindowRule | None = None,
        key_fingerprint: str = "",
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._writes = writes  # every ledger change of a run goes through it
        self._window = window
        self._backoff = backoff
        self._counters = counters
        self._dispatch = dispatch
        self._options_for = options_for
        self.budget = _Budget(max_orders)
        self._settle_seconds = settle_seconds
        self._quick_settle = min(QUICK_SETTLE_SECONDS, settle_seconds)
        self._upload_seconds = 1.0  # moving average, to upload just ahead of a slot
        self._rng = random.Random()
        self._in_flight: set[asyncio.Future[tuple[PhotoRow, bool]]] = set()
        self._settling: dict[asyncio.Task[None], float] = {}  # settler -> when it asks
        self._uploaded_here: set[int] = set()
        self._posts: Counter[int] = Counter()  # order POSTs per photo in this run
        self._answered_lost: set[int] = set()  # lost answers the API itself gave (see errors)
        # The account's window as the ledger counts it, across every run sharing the ledger.
        self._account_window = account_window
        self._key_fingerprint = key_fingerprint

    async def process(self, row: PhotoRow) -> bool:
        """Take the photo as far as this worker can; False when a settler now holds it."""
        options = self._options_for(row)
        if options is None:
            await self._fail(
                row,
                "its folder or options are no longer in the manifest; run it with that manifest",
                retryable=True,
            )
            return True
        if row.state is State.SUBMITTING:
            # Left by a killed run, or by a lost answer: its POST may still be running on the
            # server's side, so let it settle for what remains of settle_seconds.
            self._settle_later(row, self._settle_left(row))
            return False
        if row.state is State.UPLOADED and row.id not in self._uploaded_here:
            row = await self._check_earlier_upload(row)
            if row.state not in (State.PENDING, State.UPLOADED):
                return True
        self.budget.reserve(row.id)
        try:
            row = await self._order(row, options)
        except BaseException:
            self.budget.settle(row.id, spent=False)
            raise
        if row.state is State.SUBMITTING:
            quick = row.id in self._answered_lost
            self._settle_later(row, self._quick_settle if quick else self._settle_seconds)
            return False
        self.budget.settle(row.id, spent=row.state is State.SUBMITTED)
        return True

    # -- steps --------------------------------------------------------------------------------

    async def _order(self, row: PhotoRow, options: ResolvedOptions) -> PhotoRow:
        """Upload if needed and post until charged, failed, or the answer is lost."""
        reuploaded = False
        rate_limited = 0
        unreachable = 0
        while row.state in (State.PENDING, State.UPLOADED):
            fresh: str | None = None
            uploaded_now = row.state is State.PENDING or row.order_id is None
            if uploaded_now:
                row, fresh = await self._upload(row, options)
            try:
                row, lost = await self._submit(
                    row, options, fresh_order_id=fresh, queued=uploaded_now
                )
                if lost:
                    return row
                continue
            except WindowFull as full:
                # Another run of the account took the slot first: nothing was sent.
                row = self._ledger.get(row.id)
                await asyncio.sleep(full.wait_seconds)
                continue
            except (RateLimited, TransientError, RequestRejected) as exc:
                failure: ApiError = exc
            row = self._ledger.get(row.id)  # _post recorded the order id before raising
            if isinstance(failure, RateLimited):
                rate_limited += 1
                if rate_limited >= _MAX_RATE_LIMITED:
                    return await self._fail(row, "rate-limited again and again (429)", True)
            elif isinstance(failure, TransientError):
                # The order POST could not connect: nothing was sent, try again after a pause.
                unreachable += 1
                if unreachable >= self._backoff.attempts:
                    raise failure
                wait = self._backoff.wait_before(unreachable, self._rng)
                self._on_retry(failure, unreachable, wait)
                await asyncio.sleep(wait)
            elif failure.status == 404 and not reuploaded:
                # The POST was answered: the API does not know the upload (expired, or of
                # another account), so nothing was charged. Upload the photo afresh, once.
                reuploaded = True
                row = await self._writes.call(self._ledger.mark_pending, row.id)
            else:
                return await self._fail(row, failure.reason, False)
        return row

    async def _upload(self, row: PhotoRow, options: ResolvedOptions) -> tuple[PhotoRow, str | None]:
        """Upload; the new order id is recorded now if the photo must wait for its slot,
        else returned, to be recorded with the intent to submit in one commit."""
        # An upload the API may count in its window (v3's order) waits for its own slot: a
        # lead of a few ms (not 0: the window reads its clock again, a moment later), far less
        # than an upload and a process POST take, so the order is still created after the
        # slot's previous holder was answered.
        paced = self._client.paces_uploads(row.service)
        lead = _PACED_LEAD if paced else 2 * self._upload_seconds + 0.5
        await self._window.wait_for_upload_turn(lead_seconds=lead)
        if paced and self._account_window is not None:
            # Other runs of the account may fill its window meanwhile: wait for room there too.
            while (wait := self._ledger.window_wait(self._account_window)) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
        spec = options.spec
        started = time.monotonic()

        async def once() -> tuple[str, str]:
            sent = hashlib.sha256()  # what this attempt sends, whatever the scan saw
            order_id = await self._client.send_photo(row.path, spec, sent=sent)
            return order_id, sent.hexdigest()

        try:
            order_id, sha256 = await retrying(once, self._backoff, on_retry=self._on_retry)
        except OSError as exc:
            # Moved, deleted or made unreadable since the scan: nothing was spent on it.
            self._window.leave_queue()
            raise PhotoError(Path(row.path), f"cannot read: {exc.strerror or exc}") from exc
        except BaseException:
            self._window.leave_queue()
            raise
        self._upload_seconds = 0.8 * self._upload_seconds + 0.2 * (time.monotonic() - started)
        self._counters.uploads += 1
        if sha256 != row.sha256:
            # Edited since the scan (hours may pass under the window): the ledger's hash is not
            # what was sent, so this upload is never ordered; the photo is scanned again and
            # ordered as what it is now.
            self._window.leave_queue()
            self._counters.changed_on_upload += 1
            raise PhotoChanged(Path(row.path), "changed between its scan and its upload")
        self._uploaded_here.add(row.id)
        if self._window.seconds_to_next_slot() > 0:
            return await self._writes.call(self._ledger.mark_uploaded, row.id, order_id), None
        return row, order_id

    async def _check_earlier_upload(self, row: PhotoRow) -> PhotoRow:
        """An upload recorded by an earlier run (or a ledger restored from a backup) may have
        been submitted since: one GET decides before anything is posted."""
        assert row.order_id is not None
        details = await self._details(row.order_id, row.service)
        if details is None:
            # The API forgot the upload. This ledger holds no intent for it, so it was never
            # posted from here: upload the photo afresh (our reading: the API notes are silent).
            return await self._writes.call(self._ledger.mark_pending, row.id)
        if details.never_submitted:
            return row
        self._counters.found_charged += 1
        adopted = details.processes[-1] if details.processes else None
        return await self._writes.call(self._ledger.mark_submitted, row.id, adopted, None)

    async def _submit(
        self,
        row: PhotoRow,
        options: ResolvedOptions,
        *,
        fresh_order_id: str | None,
        queued: bool,
    ) -> tuple[PhotoRow, bool]:
        """POST the order in its slot; ``queued``: wait_for_upload_turn counted this photo."""
        order_id = fresh_order_id or row.order_id
        assert order_id is not None
        if self._account_window is not None:
            # Other runs of the account may fill its window: wait for room before taking one
            # of our own slots (the intent's transaction below is the check that counts).
            # Other processes free the window: there is no event of theirs to wait on.
            while (wait := self._ledger.window_wait(self._account_window)) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
        async with self._window.slot(queued=queued) as slot:
            self._counters.orders_posted += 1
            self._posts[row.id] += 1
            # The intent, the POST and its record run as their own task: a stop that cancels
            # this worker (Ctrl-C, a budget) waits for it in drain(), so an intent on disk is
            # followed by its POST, and an answered order is recorded.
            posting = asyncio.ensure_future(self._post(row, fresh_order_id, order_id, options))
            self._in_flight.add(posting)
            posting.add_done_callback(self._in_flight.discard)
            try:
                return await asyncio.shield(posting)
            except WindowFull:
                slot.unused()  # nothing was sent in it
                raise

    async def _post(
        self, row: PhotoRow, fresh_order_id: str | None, order_id: str, options: ResolvedOptions
    ) -> tuple[PhotoRow, bool]:
        """Record the intent, send one order, record its answer; True when it was lost."""
        try:
            # Intent before spending: this commit is on disk before the POST leaves, and it
            # takes the slot in the account's window in the same transaction.
            row = await self._writes.call(
                self._ledger.mark_submitting,
                row.id,
                fresh_order_id,
                window=self._account_window,
                key_fingerprint=self._key_fingerprint,
            )
        except Exception as exc:
            self._counters.orders_posted -= 1  # not written (refused): nothing was sent
            self._posts[row.id] -= 1
            if isinstance(exc, WindowFull) and fresh_order_id is not None:
                await self._writes.call(self._ledger.mark_uploaded, row.id, fresh_order_id)
            raise
        try:
            done = await self._client.spend(order_id, options.spec)
        except RateLimited:
            # A 429 is a refusal, not a charge: the order is still only uploaded.
            self._counters.rate_limited += 1
            self._window.rate_limited_answer()
            await self._writes.call(self._ledger.mark_uploaded, row.id, order_id, refused=True)
            raise
        except OutcomeUnknown as lost:
            self._counters.outcomes_unknown += 1
            if lost.still_running:
                self._answered_lost.discard(row.id)
            else:
                self._answered_lost.add(row.id)
            await self._writes.call(self._ledger.mark_lost, row.id)
            return row, True
        except (TransientError, RequestRejected, AuthRefused):
            # Never connected, or refused with a status: nothing was charged.
            await self._writes.call(self._ledger.mark_uploaded, row.id, order_id, refused=True)
            raise
        self._window.accepted_answer()
        self._counters.orders_accepted += 1
        image_id = done.image_id or None
        submitted = await self._writes.call(
            self._ledger.mark_submitted, row.id, image_id, done.eta, answered=True
        )
        return submitted, False

    async def drain(self, within_seconds: float) -> None:
        """Wait for order POSTs already sent, so their answers reach the ledger; then stop
        the settlers (their photos stay ``submitting``, settled by the next run)."""
        if self._in_flight:
            done, _ = await asyncio.wait(set(self._in_flight), timeout=within_seconds)
            for posting in done:
                if not posting.cancelled():
                    posting.exception()  # seen here: its worker was stopped before it could look
        settlers = list(self._settling)
        for settler in settlers:
            settler.cancel()
        await asyncio.gather(*settlers, return_exceptions=True)

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
