"""`python -m bench NAME...|all [--results FILE]`: each benchmark prints its figures beside
its target, then one table of them all (written to FILE too, e.g. bench/RESULTS.md).

The sandbox always runs in a process of its own; see bench/common.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    beside_baseline,
    big_photo,
    client_cost,
    client_instructions,
    faults,
    help_time,
    hostile,
    manifest_load,
    open_pipe,
    pg_ledger,
    review_desk,
    review_page,
    serve,
    shared_window,
    window,
)
from bench.common import TABLE_HEAD, Figure, other_load

BENCHMARKS: dict[str, Callable[[], list[Figure]]] = {
    "window": window.run,
    "shared-window": shared_window.run,
    "review-page": review_page.run,
    "review-desk": review_desk.run,
    "open-pipe": open_pipe.run,
    "client-cost": client_cost.run,
    "client-instructions": client_instructions.run,
    "big-photo": big_photo.run,
    "baseline": beside_baseline.run,
    "manifest-load": manifest_load.run,
    "help": help_time.run,
    "hostile": hostile.run,
    "faults": faults.run,
    "pg-window": pg_ledger.window,
    "pg-cost": pg_ledger.cost,
    "serve-latency": serve.latency,
    "serve-idle": serve.idle,
    "serve-memory": serve.memory,
}
USAGE = f"usage: python -m bench {{{'|'.join(BENCHMARKS)}|all}}... [--results FILE]"


def main(argv: list[str]) -> int:
    results: Path | None = None
    if "--results" in argv:
        at = argv.index("--results")
        if at + 1 >= len(argv):
            print(USAGE, file=sys.stderr)
            return 2
        results = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    names = list(BENCHMARKS) if argv in ([], ["all"]) else argv
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}\n{USAGE}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        started = time.perf_counter()
        with other_load() as load:
            figures = BENCHMARKS[name]()
        print(f"  ({name}: {time.perf_counter() - started:.0f} s; {load.describe()})")
        rows += [figure.row(load.describe()) for figure in figures]
    table = "\n".join([TABLE_HEAD, *rows])
    print(f"\n{table}")
    if results is not None:
        results.write_text(f"{table}\n")
    return 0  # a missed target is a figure to report, not a failure: these are not tests


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
