"""A ledger handle with a thread of its own: the desk's calls run one at a time, off the loop.

The ledger is synchronous (SQLite, or psycopg's sync API). The desk keeps two: one writes
decisions, so a decision never waits behind the live view's reads, and one reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pipeline.ledger import Ledger

__all__ = ["LedgerWorker"]

T = TypeVar("T")


class LedgerWorker:
    """Calls on one ledger handle, opened in its thread when first needed."""

    def __init__(self, open_ledger: Callable[[], Ledger], name: str) -> None:
        self._open = open_ledger
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"aihd-desk-{name}")
        self._ledger: Ledger | None = None

    async def call(self, step: Callable[[Ledger], T]) -> T:
        """``step(ledger)`` in the worker's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, step)

    def _run(self, step: Callable[[Ledger], T]) -> T:
        if self._ledger is None:
            self._ledger = self._open()
        return step(self._ledger)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=False)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
