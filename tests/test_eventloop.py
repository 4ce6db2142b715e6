"""The event loop aihd runs on: the cyclic collector's settings while it runs, and after."""

from __future__ import annotations

import subprocess
import sys

# In a process of its own: the suite's sandbox may run a loop in a thread of this one.
SCRIPT = """
import asyncio, gc, threading
from pipeline import eventloop

before = gc.get_threshold()
tuned = (max(before[0], eventloop.GC_FIRST_THRESHOLD), True)
seen = {}
inner_started, outer_may_end = threading.Event(), threading.Event()

async def outer():
    seen["outer"] = (gc.get_threshold()[0], gc.get_freeze_count() > 0)
    inner_started.wait(10)
    outer_may_end.set()

async def inner():
    inner_started.set()
    outer_may_end.wait(10)
    await asyncio.sleep(0.05)
    seen["inner"] = (gc.get_threshold()[0], gc.get_freeze_count() > 0)

thread = threading.Thread(target=eventloop.run, args=(outer(),))
thread.start()
eventloop.run(inner())
thread.join(10)
assert seen == {"outer": tuned, "inner": tuned}, seen
assert gc.get_threshold() == before, gc.get_threshold()
assert gc.get_freeze_count() == 0
print("ok")
"""


def test_the_collectors_settings_are_put_back_when_the_last_loop_ends() -> None:
    """During a loop the collector runs less often and leaves out what existed before; a loop
    in another thread (a test's sandbox) keeps that until it ends too; then all is as it was."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
