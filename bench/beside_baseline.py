"""`aihd run` beside the plain sequential script (bench/baseline.py), in one run.

Same 200 tiny photos, same sandbox (20 ms added to every request, no order window); the
script first, then `aihd run` with a fresh ledger and the manifest's default concurrency (4).
Both are whole child processes (interpreter start included); the figure is the ratio of their
wall times. The floor for the script is 200 photos * 2 requests * 20 ms = 8 s.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import (
    NO_WINDOW_ORDERS,
    PYTHON,
    Figure,
    make_photos,
    measure,
    run_aihd,
    sandbox,
    write_manifest,
)

PHOTOS, LATENCY, CONCURRENCY = 200, 0.02, 4
COMMAND = "python -m bench baseline"


def run() -> list[Figure]:
    """The sequential script's wall time over `aihd run`'s, on the same photos."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(latency=LATENCY) as box:
        root = Path(tmp)
        make_photos(root / "photos", PHOTOS)
        env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
        plain = measure([PYTHON, "-m", "bench.baseline", str(root / "photos")], env)
        if plain.exit_code != 0:
            raise RuntimeError(f"the baseline script exited {plain.exit_code}")
        manifest = write_manifest(
            root, orders=NO_WINDOW_ORDERS, per_seconds=1, concurrency=CONCURRENCY
        )
        ours = run_aihd(manifest, box)
        charged = int(str(box.stats()["orders_charged"]))
    if charged != 2 * PHOTOS:
        raise RuntimeError(f"expected {2 * PHOTOS} orders charged, the sandbox counts {charged}")
    ratio = plain.wall / ours.wall
    print(
        f"baseline: sequential script {plain.wall:.2f} s ({plain.stdout.strip()}), aihd run "
        f"{ours.wall:.2f} s (concurrency {CONCURRENCY}, fresh ledger): {ratio:.1f}x; CPU "
        f"script {plain.cpu:.2f} s, aihd {ours.cpu:.2f} s"
    )
    return [
        Figure(
            f"beside a sequential script: {PHOTOS} photos, {LATENCY * 1000:.0f} ms per request",
            f"aihd {ratio:.1f}x faster ({ours.wall:.1f} s vs {plain.wall:.1f} s; "
            f"CPU {ours.cpu:.1f} s vs {plain.cpu:.1f} s)",
            "the ratio, in one run",
            None,
            COMMAND,
        )
    ]
