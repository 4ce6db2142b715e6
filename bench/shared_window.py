"""Three runs of three manifests on one account ledger, under one order window.

Each manifest lists a folder of its own and a folder all three share; each run alone would
send 10 orders per 2 s, so together they would send three times what the account may. The
ledger's window (the intent's transaction counts the account's orders across processes) must
keep them to 10 per 2 s without a 429, and still use the window fully. The bound is as in
bench/window.py: (orders / 10 - 1) * 2 s from the first order to the last, the times being
each order's `submitted_at` in the shared ledger.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, Figure, make_photos, order_times, sandbox, write_manifest

SHARED, OWN, ORDERS, PER_SECONDS, CONCURRENCY = 30, 10, 10, 2.0, 8
PHOTOS = SHARED + 3 * OWN
COMMAND = "python -m bench shared-window"


def run(ledger: str | None = None, store: str = "") -> list[Figure]:
    """Three processes, one ledger: the combined pace against the window's bound, and 429s.
    ``ledger``: a postgresql:// URL (bench/pg_ledger.py); None: a SQLite file."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(f"{ORDERS}/{PER_SECONDS:g}") as box:
        root = Path(tmp)
        make_photos(root / "shared", SHARED)
        manifests = []
        for n, name in enumerate("abc"):
            here = root / name
            make_photos(here / "own", OWN, start=1000 * (n + 1))
            (here / "shared").symlink_to(root / "shared")
            manifests.append(
                write_manifest(
                    here,
                    orders=ORDERS,
                    per_seconds=PER_SECONDS,
                    concurrency=CONCURRENCY,
                    ledger=ledger or str(root / "account.ledger.sqlite"),
                    folders=("own", "shared"),
                )
            )
        env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
        started = time.perf_counter()
        runs = [
            subprocess.Popen(
                [PYTHON, "-m", "pipeline", "run", str(m), "--no-progress", "--json"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for m in manifests
        ]
        codes = [r.wait(timeout=600) for r in runs]
        wall = time.perf_counter() - started
        times = order_times(manifests[0], box, "--all")
        stats = box.stats()
    charges = stats["charges"]
    assert isinstance(charges, dict)
    once = sorted(charges.values()) == [1] * PHOTOS
    rejected = int(str(stats["rate_limited"]))
    bound = (PHOTOS / ORDERS - 1) * PER_SECONDS
    span = times[-1] - times[0]
    ratio = bound / span
    print(
        f"shared window: exits {codes}; {len(times)} orders from 3 processes, first to last "
        f"{span:.2f} s; bound {bound:.0f} s; ratio {ratio:.3f} (target >= 0.97); 429s "
        f"{rejected} (target 0); each photo charged once: {once}; whole run {wall:.1f} s"
    )
    return [
        Figure(
            f"shared window: 3 processes, 3 manifests, one {store}ledger, {PHOTOS} photos, "
            f"{ORDERS} orders / {PER_SECONDS:g} s",
            f"{ratio:.3f} of the bound ({span:.2f} s vs {bound:.0f} s), {rejected} 429s, "
            f"each photo charged once: {once}",
            ">= 0.97, 0 429s",
            ratio >= 0.97 and rejected == 0 and once and codes == [0, 0, 0],
            COMMAND,
        )
    ]
