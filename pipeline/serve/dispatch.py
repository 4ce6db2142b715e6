"""From a webhook's hint to the work it may start, in the background of its 2xx answer.

Only ids the ledger holds are acted on: a photo's order (v1, or v3's order of a process), or
an upscale this account asked for. The others are ignored and counted (the dashboard's webhook
is account-wide). Acting never trusts the payload: results.py and upscaling.py re-read with the
account's key. Hints wait in a bounded queue; the same id twice while waiting is one hint.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from pipeline.errors import PipelineError
from pipeline.ledger import Ledger, PhotoRow, UpscaleRow
from pipeline.serve.hooks import Hint

__all__ = ["Dispatcher"]

log = logging.getLogger("aihd")
MAX_WAITING = 10_000  # hints queued at most; more are answered 503 (the sender tries again)
BUSY_RETRY_SECONDS = 2.0


class _Results(Protocol):
    def hint(self, row: PhotoRow) -> bool: ...


class _Upscales(Protocol):
    def known(self, hint: Hint) -> UpscaleRow | None: ...
    async def delivered(self, upscale: UpscaleRow, hint: Hint) -> bool: ...


class Dispatcher:
    """Takes hints from the receiver at once; acts on them one by one."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hint] = asyncio.Queue(maxsize=MAX_WAITING)
        self._waiting: set[tuple[str, str]] = set()
        self.counts: Counter[str] = Counter()  # accepted, ignored
        self._ledger: Ledger | None = None
        self._results: _Results | None = None
        self._upscales: _Upscales | None = None
        self._note: Callable[[BaseException], None] = lambda error: None

    def bind(
        self,
        ledger: Ledger,
        results: _Results,
        upscales: _Upscales,
        note_error: Callable[[BaseException], None],
    ) -> None:
        """The parts that act (made once the API client is open)."""
        self._ledger, self._results, self._upscales = ledger, results, upscales
        self._note = note_error

    def offer(self, hint: Hint) -> bool:
        """Queue a hint; False when the queue is full (the receiver answers 503)."""
        if hint.key in self._waiting:
            return True
        try:
            self._queue.put_nowait(hint)
        except asyncio.QueueFull:
            return False
        self._waiting.add(hint.key)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            hint = await self._queue.get()
            self._waiting.discard(hint.key)
            try:
                await self._act(hint)
            except PipelineError as exc:
                self._note(exc)

    async def _act(self, hint: Hint) -> None:
        ledger, results, upscales = self._ledger, self._results, self._upscales
        assert ledger is not None and results is not None and upscales is not None
        if hint.kind == "order":
            row = ledger.photo_by_order(hint.order_id)
            if row is None:
                self.counts["ignored"] += 1  # an order of the web app, or a stranger's
                return
            self.counts["accepted"] += 1
            results.hint(row)
            return
        upscale = upscales.known(hint)
        if upscale is None:
            self.counts["ignored"] += 1
            return
        self.counts["accepted"] += 1
        if not await upscales.delivered(upscale, hint):
            asyncio.get_running_loop().call_later(BUSY_RETRY_SECONDS, self._again, hint)

    def _again(self, hint: Hint) -> None:
        """Another machine held the photo: look again (not counted twice)."""
        self.counts["accepted"] -= 1
        self.offer(hint)
