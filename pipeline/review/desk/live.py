"""The live view: the ledger read every second or so while a browser listens, and what changed
sent to each one (server-sent events): the day's progress, and photos whose state, result or
decision changed, whichever process changed them (a run, a collect, another browser).

Each read compares whole ledger rows and decisions with the last read: only changed photos are
described again. The reading stops a minute after the last browser leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from pipeline.errors import PipelineError
from pipeline.ledger import Ledger, PhotoRow, Review
from pipeline.review.desk.worker import LedgerWorker
from pipeline.review.sheet import Sheet, progress_counts

__all__ = ["Live", "Snapshot", "take_snapshot"]

log = logging.getLogger("aihd")

IDLE_SECONDS = 60.0  # keep reading this long after the last browser left
QUEUE_LIMIT = 100  # events waiting for a browser that stopped reading: it is dropped


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the ledger held at one read: each photo's row and decision, and the progress."""

    photos: Mapping[int, tuple[int, PhotoRow, Review | None]]
    progress: Mapping[str, int]


def take_snapshot(sheet: Sheet, ledger: Ledger) -> Snapshot:
    rows = sheet.rows(ledger)
    reviews = ledger.reviews()
    photos = {row.id: (m, row, reviews.get(row.id)) for m, row in rows}
    return Snapshot(photos, progress_counts([row for _, row in rows]))


Event = tuple[str, object]  # (event name, JSON-ready data)


class Live:
    """Readers of the ledger for the browsers listening (``subscribe``)."""

    def __init__(self, worker: LedgerWorker, sheet: Sheet, every: float) -> None:
        self._worker = worker
        self._sheet = sheet
        self._every = every
        self._queues: set[asyncio.Queue[Event | None]] = set()
        self._last: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None

    def offer(self, snapshot: Snapshot) -> None:
        """A read the page was built from: the next changes are counted from it, unless the
        live view is reading already (then the browser gets changes it has: harmless)."""
        if self._last is None:
            self._last = snapshot
        self._start()

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_LIMIT)
        if self._last is not None:
            queue.put_nowait(("progress", dict(self._last.progress)))
        self._queues.add(queue)
        self._start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queues.discard(queue)

    async def close(self) -> None:
        """Every browser's stream ends; the reading stops."""
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._queues.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="aihd-desk-live")

    async def _watch(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._every)
            if self._queues:
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since > IDLE_SECONDS:
                self._last = None  # the next page sets where changes count from
                return
            previous = self._last
            try:
                events, self._last = await self._worker.call(partial(self._step, previous=previous))
            except PipelineError as exc:  # the ledger away for a moment: say so, go on
                log.warning("aihd review desk: cannot read the ledger: %s", exc)
                events = [("trouble", {"error": str(exc)})]
            self._send(events)

    def _send(self, events: list[Event]) -> None:
        for queue in list(self._queues):
            try:
                for event in events:
                    queue.put_nowait(event)
            except asyncio.QueueFull:  # a browser that reads nothing any more
                self._queues.discard(queue)

    def _step(self, ledger: Ledger, previous: Snapshot | None) -> tuple[list[Event], Snapshot]:
        """In the worker's thread: read, and what changed since ``previous``."""
        now = take_snapshot(self._sheet, ledger)
        if previous is None:
            return [("progress", dict(now.progress))], now
        events: list[Event] = []
        changed = [entry for key, entry in now.photos.items() if previous.photos.get(key) != entry]
        gone = [key for key in previous.photos if key not in now.photos]
        if changed or gone:
            spelled = ledger.titles()
            described = [self._sheet.photo(m, row, review, spelled) for m, row, review in changed]
            events.append(("photos", {"changed": described, "gone": gone}))
        if now.progress != previous.progress:
            events.append(("progress", dict(now.progress)))
        return events, now
