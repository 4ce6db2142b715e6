"""`aihd --help` beside `python -c pass`: help imports no HTTP, database or schema code.

Each is a fresh interpreter, timed from spawn to exit; the figure is the median of seven.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.common import Figure

RUNS = 7
COMMAND = "python -m bench help"


def _median_seconds(args: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run() -> list[Figure]:
    bare = _median_seconds(["-c", "pass"])
    top = _median_seconds(["-m", "pipeline", "--help"])
    command = _median_seconds(["-m", "pipeline", "run", "--help"])
    print(f"  python -c pass: {bare * 1000:.0f} ms")
    print(f"  aihd --help: {top * 1000:.0f} ms; aihd run --help: {command * 1000:.0f} ms")
    return [
        Figure(
            "aihd --help / aihd run --help, beside python -c pass",
            f"{top * 1000:.0f} / {command * 1000:.0f} ms (python -c pass: {bare * 1000:.0f} ms)",
            "no HTTP or database import",
            None,
            COMMAND,
        )
    ]
