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
import os
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


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the chosen loop (Python 3.11's asyncio.run takes no loop factory)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
