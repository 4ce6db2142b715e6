"""Faults cost a retry, not a night: 300 photos, 5% answers lost after the charge, 5% 5xx.

Two fresh sandboxes, both with 50 ms added to every request and no order window, serve the same
300 photos to `aihd run` as a user runs it (default concurrency 4, --settle 10): one with no
faults, one that answers 5% of /v1 requests 500 and drops 5% of order answers after charging
them (`POST /_sandbox/faults`, a fixed seed). The figure is the whole-process wall time under
faults over the fault-free one (target <= 3), beside the charges per photo from the sandbox's
own count (target: every photo exactly 1) and both runs' exit codes (target 0).

Why --settle 10, not the default 120: an order POST answered 5xx may have been charged, so it
is posted again only after its details read "not received" for the whole settle time (issue
20). One such POST makes the run last at least one settle time, whatever the machinery does:
at the default, a run that takes 13 s without faults takes 2 to 4 minutes with them (19.6x at
7ad50a1), a figure of the settle time, not of the client. 10 s is far above the lag of the
sandbox's details (none), as a settle time must be above the real API's.

Why three faulty runs: which requests the faults fall on depends on how the 4 workers' requests
interleave, which differs from run to run even with one seed. A photo whose order POST is
answered 5xx and whose second POST is answered 5xx too waits two settle times: about half the
runs have one such photo (the ledger's order_posts show it) and take ~10 s more. One run's
ratio was 1.8x or 3.6x by luck; the figure is the median of three (seeds 10, 11, 12), with
the range beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import (
    PYTHON,
    Figure,
    Measured,
    Sandbox,
    make_photos,
    measure,
    sandbox,
    write_manifest,
)

PHOTOS, LATENCY, CONCURRENCY = 300, 0.05, 4
SETTLE = "10"  # seconds; see the module docstring
FAULTS = {"error_rate": 0.05, "lost_after_charge_rate": 0.05}
SEEDS = (10, 11, 12)
COMMAND = "python -m bench faults"


def _run(faults: dict[str, float]) -> tuple[Measured, Counter[int], dict[str, object]]:
    """`aihd run` on fresh photos and a fresh sandbox: measured, charges per photo, summary."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(latency=LATENCY) as box:
        root = Path(tmp)
        make_photos(root / "photos", PHOTOS)
        manifest = write_manifest(root, orders=100_000, per_seconds=1, concurrency=CONCURRENCY)
        if faults:
            box.set_faults(latency=LATENCY, **faults)
        command = [PYTHON, "-m", "pipeline", "run", str(manifest), "--no-progress", "--json"]
        command += ["--settle", SETTLE]
        measured = measure(command, _env(box))
        charges = box.stats()["charges"]
    assert isinstance(charges, dict)
    per_photo = Counter(int(n) for n in charges.values())
    per_photo[0] += PHOTOS - len(charges)
    try:
        summary: dict[str, object] = json.loads(measured.stdout)
    except ValueError:
        summary = {}
    return measured, per_photo, summary


def _env(box: Sandbox) -> dict[str, str]:
    return {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}


def run() -> list[Figure]:
    """Fault-free, then 5% lost answers and 5% 5xx three times: the median ratio of wall
    times, charges per photo, exit codes."""
    clean, clean_charges, _ = _run({})
    faulty = [_run({**FAULTS, "seed": seed}) for seed in SEEDS]
    walls = sorted(measured.wall for measured, _, _ in faulty)
    ratio = statistics.median(walls) / clean.wall
    once = clean_charges[1] == PHOTOS and all(c[1] == PHOTOS for _, c, _ in faulty)
    exits = (clean.exit_code, *(measured.exit_code for measured, _, _ in faulty))
    shown = "; ".join(
        ", ".join(f"{photos} photos x{n}" for n, photos in sorted(per_photo.items()) if photos)
        for _, per_photo, _ in faulty
    )
    for seed, (measured, _, summary) in zip(SEEDS, faulty, strict=True):
        print(
            f"faults: seed {seed}: {measured.wall:.1f} s, {measured.wall / clean.wall:.1f}x the "
            f"fault-free {clean.wall:.1f} s; outcomes unknown "
            f"{summary.get('outcomes_unknown', '?')}, retries {summary.get('retries', '?')}"
        )
    spread = f"{walls[0] / clean.wall:.1f}-{walls[-1] / clean.wall:.1f}x"
    return [
        Figure(
            f"faults: {PHOTOS} photos, 5% lost answers + 5% 5xx, {LATENCY * 1000:.0f} ms per "
            f"request, no window, concurrency {CONCURRENCY}, --settle {SETTLE}, three runs",
            f"{ratio:.1f}x the fault-free time, the median ({spread}: "
            f"{', '.join(f'{w:.1f}' for w in walls)} s vs {clean.wall:.1f} s); charges "
            f"{shown}; exit codes {', '.join(map(str, exits))}",
            "<= 3x, every photo charged once, exit 0",
            ratio <= 3 and once and set(exits) == {0},
            COMMAND,
        )
    ]
