"""Pace with no order window: 50 ms added to every request, 32 photos in flight.

Each photo makes two round trips, upload then submit, each at least the added latency, so
32 photos in flight can finish at most 32 / (2 * 0.05 s) = 320 photos per second. The figure
is the achieved rate, (orders - 1) / (last order - first order) from the ledger's
`submitted_at`, over that bound. The ramp (catalog, first upload) is outside that span.
CPU seconds of the client and of the sandbox say which side, if any, ran out of processor,
and a bare concurrent aiohttp client (bench/baseline.py: same calls, same concurrency, no
ledger) run against a second, identical sandbox shows what the sandbox itself allows here.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from bench.common import (
    NO_WINDOW_ORDERS,
    PYTHON,
    Figure,
    make_photos,
    measure,
    order_times,
    run_aihd,
    sandbox,
    write_manifest,
)

PHOTOS, LATENCY, CONCURRENCY = 600, 0.05, 32
COMMAND = "python -m bench open-pipe"


def run() -> list[Figure]:
    """600 photos, 50 ms per request, concurrency 32: the rate against 32 / (2 * 50 ms)."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(latency=LATENCY) as box:
        root = Path(tmp)
        make_photos(root / "photos", PHOTOS)
        manifest = write_manifest(
            root, orders=NO_WINDOW_ORDERS, per_seconds=1, concurrency=CONCURRENCY
        )
        sandbox_cpu = box.cpu_seconds()
        measured = run_aihd(manifest, box)
        sandbox_cpu = box.cpu_seconds() - sandbox_cpu
        times = order_times(manifest, box)
    bare = _bare_rate()
    rate = (len(times) - 1) / (times[-1] - times[0])
    bound = CONCURRENCY / (2 * LATENCY)
    ratio = rate / bound
    cores = os.cpu_count() or 1
    print(
        f"open pipe: {len(times)} orders at {rate:.0f} photos/s; bound {CONCURRENCY} / "
        f"(2 * {LATENCY:g} s) = {bound:.0f}/s; ratio {ratio:.3f} (target >= 0.9); whole run "
        f"{measured.wall:.2f} s; CPU: client {measured.cpu:.2f} s "
        f"({measured.cpu / PHOTOS * 1000:.2f} ms/photo), sandbox {sandbox_cpu:.2f} s, "
        f"of {cores} cores x {measured.wall:.2f} s; a bare aiohttp client (no ledger) gets "
        f"{bare:.0f} photos/s = {bare / bound:.2f} of the bound from the same sandbox setup, "
        f"aihd {rate / bare:.2f} of that"
    )
    return [
        Figure(
            f"open pipe: {PHOTOS} photos, {LATENCY * 1000:.0f} ms per request, concurrency "
            f"{CONCURRENCY}",
            f"{rate:.0f} photos/s = {ratio:.2f} of {bound:.0f}/s (a bare aiohttp client, no "
            f"ledger: {bare:.0f}/s = {bare / bound:.2f})",
            ">= 0.9",
            ratio >= 0.9 and len(times) == PHOTOS,
            COMMAND,
        )
    ]


def _bare_rate() -> float:
    """Photos per second a bare concurrent client gets from a fresh sandbox set up the same."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(latency=LATENCY) as box:
        folder = Path(tmp) / "photos"
        make_photos(folder, PHOTOS)
        env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
        command = [PYTHON, "-m", "bench.baseline", str(folder), "--concurrency", str(CONCURRENCY)]
        out = measure(command, env).stdout
    match = re.search(r"([\d.]+) photos/s", out)
    if match is None:
        raise RuntimeError(f"the bare client printed no rate: {out!r}")
    return float(match.group(1))
