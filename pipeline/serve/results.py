"""Collecting results while serving: webhook first, polling as the fallback.

A charged photo waits here for its result. A webhook naming its order makes it due at once;
otherwise it is polled after its eta plus ``poll_after`` (the webhook's chance to come first),
then less and less often. Either way the order is read with the account's key and the result
downloaded from that answer only (collect's ``PhotoCollector``: names from the ledger, written
atomically, decoded before it counts). Collect claims a photo's results in the ledger before
downloading them, so two machines told of one order by two webhooks download it once; an id the
ledger does not hold was ignored before it got here (dispatch.py).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime

from pipeline.collect.collector import PhotoCollector
from pipeline.ledger import Ledger, PhotoRow, State
from pipeline.serve.roots import by_root, nearest

__all__ = ["Results"]

log = logging.getLogger("aihd")
MIN_POLL_SECONDS = 5.0  # the API asks for no more than one poll per order every 5 s
MAX_POLL_SECONDS = 300.0


class Results:
    """The photos waiting for their results, due by webhook or by their poll time."""

    def __init__(
        self,
        ledger: Ledger,
        collectors: Sequence[tuple[Sequence[str], PhotoCollector]],
        *,
        poll_after: float,
        eta_scale: float = 1.0,
        concurrency: int = 4,
        on_completed: Callable[[PhotoRow], None] = lambda row: None,
        on_error: Callable[[BaseException], None] = lambda error: None,
    ) -> None:
        self._ledger = ledger  # a handle of its own: its claims are this collector's
        self._by_root: dict[str, PhotoCollector] = {}
        self.use(collectors)
        self._poll_after = poll_after
        self._eta_scale = eta_scale
        self._concurrency = concurrency
        self._on_completed = on_completed
        self._on_error = on_error  # the service's: AuthRefused stops it, others are noted
        self._heap: list[tuple[float, int, int]] = []  # (due, seq, photo id)
        self._due: dict[int, float] = {}  # photo id -> its latest due time
        self._waits: dict[int, float] = {}  # photo id -> its next poll's pause
        self._hinted: set[int] = set()  # due by a webhook (read "webhook", not "poll")
        self._early: set[str] = set()  # orders a webhook named before they were recorded
        self._busy: set[int] = set()
        self._seq = 0
        self._wake = asyncio.Event()
        self.reads: Counter[str] = Counter()  # "webhook", "poll"
        self.completed = 0

    def use(self, collectors: Sequence[tuple[Sequence[str], PhotoCollector]]) -> None:
        """The manifests' folders and output folders as they are now (SIGHUP)."""
        self._by_root = by_root((root, c) for roots, c in collectors for root in roots)

    @property
    def backlog(self) -> int:
        return len(self._due) + len(self._busy)

    # -- what is due --------------------------------------------------------------------------

    def refresh(self, *, again: bool = False) -> None:
        """Schedule the charged photos not scheduled yet (a run or another machine ordered
        them, or this service did). ``again`` (the start, a rescan): also charged photos whose
        result failed, retried as results; and no webhook's grace, since their webhooks may
        have come and gone while no one listened."""
        now = time.monotonic()
        states = [State.SUBMITTED, State.FAILED] if again else [State.SUBMITTED]
        # The served folders are looked up by each row's own directories, not asked of the
        # ledger: a scope of 1,000 folders cost each photo a thousand comparisons there.
        for row in self._ledger.photos(states):
            if row.state is State.FAILED and not row.charged:
                continue
            if self._collector_of(row.path) is None:
                continue
            if row.id in self._due or row.id in self._busy:
                continue
            self._schedule_new(row, now, grace=0.0 if again else self._poll_after)

    def submitted(self, photo_id: int) -> None:
        """This service just settled a photo: charged, it waits for its result here."""
        row = self._ledger.get(photo_id)
        if row.state is State.SUBMITTED and row.id not in self._due and row.id not in self._busy:
            self._schedule_new(row, time.monotonic(), grace=self._poll_after)

    def hint(self, row: PhotoRow) -> bool:
        """A webhook named this photo's order: due now. False: nothing left to do for it."""
        if row.state in (State.PENDING, State.UPLOADED, State.SUBMITTING):
            if row.order_id:
                self._early.add(row.order_id)  # recorded as charged any moment now
            return True
        if row.state is not State.SUBMITTED and not (row.state is State.FAILED and row.charged):
            return False  # completed already: a duplicate or a replay
        self._hinted.add(row.id)
        if row.id not in self._busy:
            self._push(time.monotonic(), row.id)
        return True

    def _schedule_new(self, row: PhotoRow, now: float, grace: float) -> None:
        if row.order_id is not None and row.order_id in self._early:
            self._early.discard(row.order_id)
            self._hinted.add(row.id)
            self._push(now, row.id)
            return
        if row.eta is None:
            # Found charged by its order's details (an answer lost, a stop): its webhook may
            # have come while no one listened. Its details are read at once.
            grace = 0.0
        self._push(_eta_due(row, self._eta_scale, now) + grace, row.id)

    def _push(self, due: float, photo_id: int) -> None:
        self._seq += 1
        self._due[photo_id] = due
        heapq.heappush(self._heap, (due, self._seq, photo_id))
        self._wake.set()

    def _take(self, now: float) -> int | None:
        while self._heap and self._heap[0][0] <= now:
            due, _, photo_id = heapq.heappop(self._heap)
            if self._due.get(photo_id) == due:  # else a later push replaced this entry
                del self._due[photo_id]
                return photo_id
        return None

    # -- collecting ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Collect what is due until ``stop``; a photo in flight is let finish or dropped
        whole (collect writes a file only once it is complete)."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self._concurrency)]
        try:
            await stop.wait()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            now = time.monotonic()
            photo_id = self._take(now)
            if photo_id is None:
                self._wake.clear()
                wait = (self._heap[0][0] - now) if self._heap else 3600.0
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, wait))
                continue
            self._busy.add(photo_id)
            try:
                await self._collect(photo_id)
            except Exception as exc:  # the disk, the key, the ledger: the service decides
                self._on_error(exc)
                self._push(time.monotonic() + MAX_POLL_SECONDS, photo_id)
            finally:
                self._busy.discard(photo_id)

    async def _collect(self, photo_id: int) -> None:
        cause = "webhook" if photo_id in self._hinted else "poll"
        row = self._ledger.get(photo_id)
        if row.state is not State.SUBMITTED and not (row.state is State.FAILED and row.charged):
            self._hinted.discard(photo_id)
            return  # collected by another machine (or run) meanwhile
        collector = self._collector_of(row.path)
        if collector is None:
            return
        self.reads[cause] += 1
        # The collector claims the photo's results in the ledger before it downloads them
        # (collect's claims): of two machines told of one order, one fetches it; the other
        # finds it held (not settled: looked at again later) or placed (settled).
        settled = await collector.settle(row)
        self._hinted.discard(photo_id)
        if not settled:
            wait = self._waits.get(photo_id, MIN_POLL_SECONDS)
            self._waits[photo_id] = min(MAX_POLL_SECONDS, wait * 2)
            self._push(time.monotonic() + wait, photo_id)
            return
        self._waits.pop(photo_id, None)
        done = self._ledger.get(photo_id)
        if done.state is State.COMPLETED:
            self.completed += 1
            self._on_completed(done)

    def _collector_of(self, path: str) -> PhotoCollector | None:
        """The collector of the manifest whose folder holds the photo."""
        return nearest(path, self._by_root)


def _eta_due(row: PhotoRow, eta_scale: float, now: float) -> float:
    """When the photo's eta has passed, on the monotonic clock (now if it cannot be told)."""
    if row.eta is None or row.submitted_at is None:
        return now
    submitted = datetime.fromisoformat(row.submitted_at)
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    elapsed = time.time() - submitted.timestamp()
    return now if elapsed < 0 else now + max(0.0, row.eta * eta_scale - elapsed)
