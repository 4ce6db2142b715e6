"""The client's own cost: CPU per photo and peak memory of `aihd run`, then a re-run.

20,000 and 100,000 tiny distinct photos, no latency, no order window. CPU (user + system) and
peak RSS are the `aihd run` child's alone (os.wait4); the sandbox runs in another process and
its CPU is shown beside, to tell whether it, not the client, set the pace. The re-run is the
same command over the finished ledger: its whole-process wall time (interpreter start, imports,
catalog, scan, summary) is the figure, with the run's own `seconds` beside it. For 20,000, the
first run is repeated on a fresh ledger on asyncio's own loop (AIHD_EVENT_LOOP=asyncio), to
show what uvloop saves.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import (
    Figure,
    Measured,
    Sandbox,
    make_photos,
    python_pace,
    run_aihd,
    sandbox,
    summary,
    write_manifest,
)

COUNTS = (20_000, 100_000)
CONCURRENCY = 32
COMMAND = "python -m bench client-cost"


def run(counts: tuple[int, ...] = COUNTS) -> list[Figure]:
    """CPU per photo, peak memory and a re-run's wall time, for each photo count."""
    figures = []
    for count in counts:
        figures += _one(count)
    return figures


def _one(count: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        root = Path(tmp)
        started = time.perf_counter()
        make_photos(root / "photos", count)
        made = time.perf_counter() - started
        manifest = write_manifest(root, orders=100_000, per_seconds=1, concurrency=CONCURRENCY)
        sandbox_cpu = box.cpu_seconds()
        pace = python_pace()
        first = run_aihd(manifest, box)
        sandbox_cpu = box.cpu_seconds() - sandbox_cpu
        again = run_aihd(manifest, box)
        charged = int(str(box.stats()["orders_charged"]))
        standard = _on_asyncio_loop(manifest, box) if count == COUNTS[0] else None
    cpu_ms = first.cpu / count * 1000
    rerun_in_run = summary(again).get("seconds")
    print(
        f"client cost, {count:,} photos (made in {made:.1f} s): first run {first.wall:.1f} s "
        f"wall, {count / first.wall:.0f} photos/s, {charged:,} orders charged; client CPU "
        f"{first.cpu:.1f} s = {cpu_ms:.3f} ms/photo (target <= 1); sandbox CPU "
        f"{sandbox_cpu:.1f} s ({sandbox_cpu / first.wall:.2f} of a core); peak RSS "
        f"{first.peak_rss_mb:.0f} MB (target <= 100); re-run {again.wall:.2f} s wall, "
        f"{rerun_in_run} s in the run, {again.cpu:.2f} s CPU, peak {again.peak_rss_mb:.0f} MB "
        f"(target < 1 s for 20,000); this machine's pace: 10 M additions of a Python loop in "
        f"{pace:.2f} s CPU"
    )
    name = f"client cost: {count:,} photos"
    if standard is not None:
        print(
            f"  the same first run on asyncio's own loop (AIHD_EVENT_LOOP=asyncio): CPU "
            f"{standard.cpu:.1f} s = {standard.cpu / count * 1000:.3f} ms/photo, "
            f"{standard.wall:.1f} s wall"
        )
    figures = [
        Figure(
            f"{name}, CPU per photo",
            f"{cpu_ms:.2f} ms ({first.cpu:.1f} s CPU, {first.wall:.0f} s wall; pace: a 10 M "
            f"Python loop in {pace:.2f} s)",
            "<= 1 ms",
            cpu_ms <= 1 and charged == count,
            COMMAND,
        ),
        Figure(
            f"{name}, peak memory",
            f"{first.peak_rss_mb:.0f} MB",
            "<= 100 MB",
            first.peak_rss_mb <= 100,
            COMMAND,
        ),
        Figure(
            f"{name}, re-run when all are done (whole process)",
            f"{again.wall:.2f} s ({rerun_in_run} s inside the run)",
            "< 1 s" if count == 20_000 else "none (20,000: < 1 s)",
            again.wall < 1 if count == 20_000 else None,
            COMMAND,
        ),
    ]
    if standard is not None:
        figures.insert(
            1,
            Figure(
                f"{name}, CPU per photo on asyncio's own loop",
                f"{standard.cpu / count * 1000:.2f} ms ({standard.cpu:.1f} s CPU)",
                "none (AIHD_EVENT_LOOP=asyncio)",
                None,
                COMMAND,
            ),
        )
    return figures


def _on_asyncio_loop(manifest: Path, box: Sandbox) -> Measured:
    """The first run again on a fresh ledger, on asyncio's loop: what uvloop saves."""
    for leftover in manifest.parent.glob("bench.ledger.sqlite*"):
        leftover.unlink()
    return run_aihd(manifest, box, loop="asyncio")
