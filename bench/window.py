"""Pace under an order window: 60 photos at 10 orders per 2 s, against the window's bound.

The bound: the sandbox's sliding window lets order k+10 in no sooner than 2 s after order k,
so order 60 comes at least 2 s after order 50, which comes 2 s after order 40, ... after
order 10, which comes no sooner than order 1: (60/10 - 1) * 2 s = 10 s from the first order to
the last. The figure is bound / (last order - first order), the times being each order's
`submitted_at` in the ledger (`aihd export`: when its answer came back). 429s are the
sandbox's own count (`/_sandbox/stats` rate_limited).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import (
    Figure,
    make_photos,
    order_times,
    run_aihd,
    sandbox,
    summary,
    write_manifest,
)

PHOTOS, ORDERS, PER_SECONDS, CONCURRENCY = 60, 10, 2.0, 8
COMMAND = "python -m bench window"


def run() -> list[Figure]:
    """60 photos under 10 orders per 2 s: the ratio to the bound, and the 429s."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(f"{ORDERS}/{PER_SECONDS:g}") as box:
        root = Path(tmp)
        make_photos(root / "photos", PHOTOS)
        manifest = write_manifest(
            root, orders=ORDERS, per_seconds=PER_SECONDS, concurrency=CONCURRENCY
        )
        measured = run_aihd(manifest, box)
        times = order_times(manifest, box)
        rejected = box.rate_limited()
    bound = (PHOTOS / ORDERS - 1) * PER_SECONDS
    span = times[-1] - times[0]
    ratio = bound / span
    print(
        f"window: {len(times)} orders, first to last {span:.2f} s; bound "
        f"({PHOTOS}/{ORDERS} - 1) * {PER_SECONDS:g} s = {bound:.0f} s; ratio {ratio:.3f} "
        f"(target >= 0.97); sandbox 429s {rejected}, client saw "
        f"{summary(measured).get('rate_limited')} (target 0); whole run {measured.wall:.1f} s"
    )
    return [
        Figure(
            f"window: {PHOTOS} photos, {ORDERS} orders / {PER_SECONDS:g} s, concurrency "
            f"{CONCURRENCY}",
            f"{ratio:.3f} of the bound ({span:.2f} s vs {bound:.0f} s first to last order), "
            f"{rejected} 429s",
            ">= 0.97, 0 429s",
            ratio >= 0.97 and rejected == 0 and len(times) == PHOTOS,
            COMMAND,
        )
    ]
