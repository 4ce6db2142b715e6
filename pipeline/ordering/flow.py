"""One photo's way to a paid order: upload, submit under the order window, record.

The rule that keeps a user from paying twice: ``submitting`` is committed to the ledger before
the order POST leaves, by the holder of the photo's live claim only (checked in the intent's
own transaction, with the claim's fencing token), and the POST leaves at once or never: a
sender paused between its intent and the request (past ``send_within`` on the boot clock)
sends nothing. A POST whose answer may have followed a charge (a 5xx of any body, a reset, a
timeout) leaves the photo ``unknown``, and it is never sent again blindly: settling.py lets
the order's own details decide.

A charged photo is never ordered again: the ledger refuses the intent (see ``mark_submitting``).
"""

from __future__ import annotations

__all__ = ["OrderBudget", "OrderFlow", "RunCounters"]

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pipeline.api.interface import PhotoApi
from pipeline.bootclock import boot_seconds
from pipeline.errors import (
    ApiError,
    AuthRefused,
    ClaimLost,
    OrderBudgetSpent,
    OutcomeUnknown,
    PhotoChanged,
    PhotoError,
    RateLimited,
    RequestRejected,
    SubmitRefused,
    TransientError,
    WindowFull,
)
from pipeline.ledger import Ledger, PhotoRow, State, WindowRule
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.ordering.catalog import ResolvedOptions
from pipeline.ordering.settling import Dispatch, Settling
from pipeline.ordering.window import OrderWindow
from pipeline.retry import Backoff, retrying

_MAX_RATE_LIMITED = 20  # 429s in a row for one photo before it is left for the next run
_PACED_LEAD = 0.005  # seconds an upload counted in the window may start before its slot
# How long after its intent an order POST may still leave (``send_within``): a quarter of the
# settle time, within these bounds, and at most a quarter of the claims' lease. Settling counts
# from the intent plus this (or from an HTTP answer to the POST, if that came sooner), so it is
# how late a POST may be, not how short a settle is.
_SEND_WITHIN_MIN, _SEND_WITHIN_MAX = 0.25, 5.0


class _NotSent(Exception):
    """The intent was committed, but too late to send (a pause, a stall): nothing was sent."""

    def __init__(self, row: PhotoRow) -> None:
        super().__init__(f"photo {row.id}: intent no longer fresh, not sent")
        self.row = row


class _Stopping(Exception):
    """The run is stopping: no new intent is recorded, nothing is sent."""


@dataclass(slots=True)
class RunCounters:
    """What this run did, for the progress line and the summary."""

    uploads: int = 0
    orders_posted: int = 0  # order POSTs sent, whatever their answer
    orders_accepted: int = 0  # answered with the order: charged
    outcomes_unknown: int = 0  # answers lost; each is then settled by the order's details
    reconciled_submitted: int = 0  # lost answers (this run's or a killed run's) found charged
    reconciled_idle: int = 0  # lost answers the details showed "not received" all along
    unconfirmed: int = 0  # this run's POSTs whose outcome is still unknown: may have charged
    found_charged: int = 0  # uploads of an earlier run the API shows submitted already
    changed_on_upload: int = 0  # photos whose bytes changed between scan and upload
    retries: int = 0
    rate_limited: int = 0

    @property
    def orders_spent(self) -> int:
        """Orders this run paid for or may have: confirmed by the API (answered, or found
        charged when settled), and this run's POSTs whose outcome is still unknown."""
        return self.orders_accepted + self.reconciled_submitted + self.unconfirmed


class OrderBudget:
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


class OrderFlow(Settling):
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
        self.budget = OrderBudget(max_orders)
        self._settle_seconds = settle_seconds
        self._send_within = min(
            max(settle_seconds / 4, _SEND_WITHIN_MIN), _SEND_WITHIN_MAX, ledger.lease_seconds / 4
        )
        self._upload_seconds = 1.0  # moving average, to upload just ahead of a slot
        self._rng = random.Random()
        self._in_flight: set[asyncio.Future[tuple[PhotoRow, bool]]] = set()
        self._settling: dict[asyncio.Task[None], float] = {}  # settler -> when it may repost
        self._uploaded_here: set[int] = set()
        self._posts: Counter[int] = Counter()  # order POSTs per photo in this run
        self._fences: dict[int, int | None] = {}  # photo -> the token of this run's claim
        self._unconfirmed: set[int] = set()  # photos whose POST here may have charged, unsettled
        self._answered: dict[int, float] = {}  # photo -> when its lost POST here got a status
        self._stopping = False
        # The account's window as the ledger counts it, across every run sharing the ledger.
        self._account_window = account_window
        self._key_fingerprint = key_fingerprint

    def forget(self, photo_id: int) -> None:
        """The photo is settled for this run: what was kept of it goes (a run of 100,000
        photos kept ~0.3 KB for each until its end)."""
        self._fences.pop(photo_id, None)
        self._posts.pop(photo_id, None)
        self._answered.pop(photo_id, None)
        self._uploaded_here.discard(photo_id)

    async def process(self, row: PhotoRow, fence: int | None = None) -> bool:
        """Take the photo as far as this worker can; False when a settler now holds it.
        ``fence``: the token of this run's claim on it, which every write of it must match."""
        self._fences[row.id] = fence
        if row.state in (State.SUBMITTING, State.UNKNOWN):
            # Left by a killed or stopped run: its POST may have been charged (or may still be
            # running on the server's side). Only its order's details can tell.
            self._settle_later(row)
            return False
        options = self._options_for(row)
        if options is None:
            await self._fail(
                row,
                "its folder or options are no longer in the manifest; run it with that manifest",
                retryable=True,
            )
            return True
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
        if row.state in (State.SUBMITTING, State.UNKNOWN):
            self._settle_later(row)  # its answer was lost, or its intent was never sent
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
                row = await self._writes.call(
                    self._ledger.mark_pending, row.id, fence=self._fences.get(row.id)
                )
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
            fence = self._fences.get(row.id)
            row = await self._writes.call(self._ledger.mark_uploaded, row.id, order_id, fence=fence)
            return row, None
        return row, order_id

    async def _check_earlier_upload(self, row: PhotoRow) -> PhotoRow:
        """An upload recorded by an earlier run (or a ledger restored from a backup) may have
        been submitted since: one GET decides before anything is posted."""
        assert row.order_id is not None
        details = await self._details(row.order_id, row.service)
        if details is None:
            # The API forgot the upload. This ledger holds no intent for it, so it was never
            # posted from here: upload the photo afresh (our reading: the API notes are silent).
            fence = self._fences.get(row.id)
            return await self._writes.call(self._ledger.mark_pending, row.id, fence=fence)
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
            except (WindowFull, SubmitRefused, _Stopping):
                slot.unused()  # nothing was sent in it
                raise
            except _NotSent as unsent:
                slot.unused()
                return unsent.row, True  # submitting, never sent: settled all the same

    async def _post(
        self, row: PhotoRow, fresh_order_id: str | None, order_id: str, options: ResolvedOptions
    ) -> tuple[PhotoRow, bool]:
        """Record the intent, send one order, record its answer; True when it was lost."""
        fence = self._fences.get(row.id)
        intended = row
        sent = False

        async def intent() -> None:
            """Called by the client once the POST can leave at once (v3: its process slot is
            free): record the intent, then send only if it is still fresh."""
            nonlocal intended, sent
            if self._stopping:
                raise _Stopping
            started = boot_seconds()
            try:
                # Intent before spending: on disk before the POST leaves, under this run's live
                # claim (its fencing token), taking the slot in the account's window, all in
                # one transaction.
                intended = await self._writes.call(
                    self._ledger.mark_submitting,
                    row.id,
                    fresh_order_id,
                    window=self._account_window,
                    key_fingerprint=self._key_fingerprint,
                    fence=fence,
                    send_within=self._send_within,
                )
            except Exception as exc:
                if isinstance(exc, WindowFull) and fresh_order_id is not None:
                    await self._writes.call(
                        self._ledger.mark_uploaded, row.id, fresh_order_id, fence=fence
                    )
                raise
            # A pause between that commit and the send (SIGSTOP, a laptop's sleep, a machine
            # too busy to run us) could outlast this run's claim: another run may have taken
            # the photo over since. The POST leaves only within send_within of the intent, on
            # the boot clock (which counts a suspend), else never: the photo is settled. What
            # remains is a pause after this check and before the request's bytes leave, a few
            # instructions wide. It is safe unless that pause outlasts both the lease (before
            # it no other run may take the photo) and the settle time: a run that takes it
            # over posts it again only after its details said "not received" at every read for
            # the whole settle time since intent + send_within, the latest this POST could
            # have left had it not been paused there.
            if boot_seconds() - started > self._send_within:
                raise _NotSent(intended)
            sent = True

        try:
            done = await self._client.spend(order_id, options.spec, before_send=intent)
        except Exception as exc:
            if not sent:
                self._counters.orders_posted -= 1  # nothing was sent
                self._posts[row.id] -= 1
                if isinstance(exc, _NotSent):
                    await self._writes.call(self._ledger.mark_unsent, row.id)
                raise
            if isinstance(exc, OutcomeUnknown):
                if exc.status is not None:
                    # An HTTP answer: the POST had left by now (see Settling._settle_left).
                    self._answered[row.id] = boot_seconds()
                self._counters.outcomes_unknown += 1
                self._unconfirmed.add(row.id)
                self._counters.unconfirmed = len(self._unconfirmed)
                reason = f"{exc}; may have been charged: settled from the order's details"
                await self._writes.call(self._ledger.mark_lost, row.id, reason)
                return self._ledger.get(row.id), True
            if isinstance(exc, RateLimited):
                # A 429 is a refusal, not a charge: the order is still only uploaded.
                self._counters.rate_limited += 1
                self._window.rate_limited_answer()
            if isinstance(exc, TransientError | RequestRejected | AuthRefused):
                # Never connected, or refused with a status: nothing was charged. (A claim lost
                # meanwhile leaves the photo as it is, its refusal recorded: settled, or the
                # other run's.)
                with suppress(ClaimLost):
                    await self._writes.call(
                        self._ledger.mark_uploaded, row.id, order_id, refused=True, fence=fence
                    )
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
        the settlers (their photos stay ``unknown``, settled by the next run). No intent is
        recorded from now on."""
        self._stopping = True
        if self._in_flight:
            done, late = await asyncio.wait(set(self._in_flight), timeout=within_seconds)
            for posting in done:
                if not posting.cancelled():
                    posting.exception()  # seen here: its worker was stopped before it could look
            # Unanswered in time: cut, as a kill would. Each intent is on disk (``submitting``),
            # settled by the next run; the task must not write once the run has closed.
            for posting in late:
                posting.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        settlers = list(self._settling)
        for settler in settlers:
            settler.cancel()
        await asyncio.gather(*settlers, return_exceptions=True)
