"""Which event loop runs aihd: uvloop where it is installed, else asyncio's own.

A photo costs the client two small HTTP round trips, and a quarter of the interpreter's work per
photo was asyncio's pure-Python loop: handles, callbacks, selector and transports. uvloop does
the same in C: 9% fewer instructions per photo, counted with valgrind over a whole run
(bench/RESULTS.md). It is a dependency on Linux and macOS only; on Windows, or with
``AIHD_EVENT_LOOP=asyncio`` (an escape hatch, and how the benchmarks show the difference),
asyncio's loop runs the same code.
"""

from __future__ import annotations

__all__ = ["LOOP_ENV", "T", "loop_factory", "run"]

import asyncio
import gc
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOP_ENV = "AIHD_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is wanted and importable; None means asyncio's."""
    if os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# A run allocates many short-lived containers per photo (rows, requests, futures) and makes
# almost no reference cycles: with the default first threshold (700 allocations) the cyclic
# collector ran every few photos and was ~4% of a photo's instructions (bench/RESULTS.md).
GC_FIRST_THRESHOLD = 10_000

_gc_lock = threading.Lock()
_gc_users = 0  # loops running in this process (a test's sandbox thread beside a command)
_gc_saved: tuple[int, int, int] = (0, 0, 0)


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the chosen loop (Python 3.11's asyncio.run takes no loop factory).

    While it runs, the objects made before it (modules, classes, the manifest) are left out
    of the cyclic collector's passes (``gc.freeze``), and it runs less often. Both are put
    back when the last loop of the process ends, for a caller that goes on (a test calling
    the CLI in its own process, beside a sandbox in a thread)."""
    _tune_gc(True)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)
    finally:
        _tune_gc(False)


def _tune_gc(starting: bool) -> None:
    global _gc_users, _gc_saved
    with _gc_lock:
        if starting:
            _gc_users += 1
            if _gc_users == 1:
                _gc_saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(max(_gc_saved[0], GC_FIRST_THRESHOLD), *_gc_saved[1:])
        else:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()
