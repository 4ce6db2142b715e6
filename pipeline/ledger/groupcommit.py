"""Ledger writes from many photos at once, committed together: one fsync for a burst.

Each ledger change is on disk (``synchronous=FULL``) before the call returns, and a run makes
two per photo. Made one by one on the event loop, each commit's fsync stalled every photo in
flight, and the commits were a large part of the client's CPU per photo (bench/RESULTS.md).
Here a write is queued and awaited; the writes queued during one turn of the event loop run in
the next turn, in ONE transaction, committed once; then each caller gets its own result.

What does not change: a caller resumes only after its write is committed, so ``submitting`` is
still on disk before the order POST leaves. A write that fails (a refusal such as "not
uploaded") fails alone: its UPDATE changed nothing and the others commit. If the transaction
itself is lost (a full disk), every caller of the batch gets the error and none believes its
write is on disk. A queued write is made even if its caller is cancelled meanwhile, as it would
have been had the call been synchronous. A group the store rolls back whole before its COMMIT
(GroupRolledBack: a deadlock with another machine, a lost connection) is made again from the
start, every write giving its new result: its first results were never written.
"""

from __future__ import annotations

__all__ = ["GROUP_RETRY_PAUSE", "MAX_GROUP_ATTEMPTS", "GroupCommit", "P", "T"]

import asyncio
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from pipeline.errors import GroupRolledBack
from pipeline.ledger import Ledger

P = ParamSpec("P")
T = TypeVar("T")

MAX_GROUP_ATTEMPTS = 20  # a group rolled back whole is made again this many times at most
GROUP_RETRY_PAUSE = 0.01  # seconds, times the attempt: let the other transaction finish

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class GroupCommit:
    """``await writes.call(ledger.mark_submitted, photo_id, ...)``: batched per loop turn."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._pending: list[_Job] = []
        self.commits = 0  # transactions committed, for the benchmark's figures and the tests
        self.writes = 0

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)``, a ledger write, for the next group commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((fn, args, kwargs, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for attempt in range(1, MAX_GROUP_ATTEMPTS + 1):
            outcomes: list[tuple[bool, Any]] = []
            try:
                with self._ledger.grouped():
                    for fn, args, kwargs, _ in batch:
                        try:
                            outcomes.append((True, fn(*args, **kwargs)))
                        except Exception as exc:  # handed to that write's caller
                            outcomes.append((False, exc))
            except GroupRolledBack as exc:
                # Nothing of the group was written and its results are void: make it again
                # (PostgreSQL: a deadlock with another machine, a connection lost mid-group).
                outcomes = [(False, exc)] * len(batch)
                if attempt < MAX_GROUP_ATTEMPTS:
                    time.sleep(GROUP_RETRY_PAUSE * attempt)
                    continue
            except Exception as exc:  # the commit failed: every caller hears it
                outcomes = [(False, exc)] * len(batch)
            else:
                self.commits += 1
                self.writes += len(batch)
            break
        for (*_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.cancelled():
                continue  # its caller is gone; the write itself was made
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
