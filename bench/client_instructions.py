"""The client's cost in instructions: what a photo costs, whatever else the machine is doing.

CPU seconds on this shared VM are not comparable across hours (the same code measured 0.74 ms
a photo one day and 1.84 ms on another, on an idle VM: bench/RESULTS.md), so changes are judged
by instructions: valgrind (cachegrind, no cache simulation) over a whole `aihd run` against
`aihd sandbox` (no window, concurrency 32), at 200 and at 1,200 tiny photos. The difference
over 1,000 is the marginal cost of a photo; what is left of the first is the start-up
(interpreter, imports, catalog, ledger). Needs valgrind; takes ~3 minutes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import (
    PYTHON,
    Figure,
    make_photos,
    run_env,
    sandbox,
    write_manifest,
)

SIZES = (200, 1_200)
COMMAND = "python -m bench client-instructions"


def run() -> list[Figure]:
    if shutil.which("valgrind") is None:
        print("client instructions: valgrind is not installed (apt-get install valgrind)")
        return []
    small, large = (_instructions(n) for n in SIZES)
    per_photo = (large - small) / (SIZES[1] - SIZES[0])
    start_up = small - SIZES[0] * per_photo
    print(
        f"client instructions: {SIZES[0]:,} photos {small / 1e9:.3f} G, {SIZES[1]:,} photos "
        f"{large / 1e9:.3f} G: {per_photo / 1e6:.3f} M a photo at the margin, start-up "
        f"{start_up / 1e9:.3f} G"
    )
    return [
        Figure(
            "client instructions per photo (marginal, 200 to 1,200 photos)",
            f"{per_photo / 1e6:.2f} M",
            "none (8bf4a30, 0.74 ms a photo when measured: 1.74 M)",
            None,
            COMMAND,
        ),
        Figure(
            "client start-up instructions (`aihd run`, imports to first photo and summary)",
            f"{start_up / 1e9:.2f} G",
            "none",
            None,
            COMMAND,
        ),
    ]


def _instructions(count: int) -> int:
    """Instructions of one whole `aihd run` over ``count`` new photos."""
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        root = Path(tmp)
        make_photos(root / "photos", count)
        manifest = write_manifest(root, orders=100_000, per_seconds=1, concurrency=32)
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=no",
            f"--cachegrind-out-file={root / 'cachegrind.out'}",
            PYTHON, "-m", "pipeline", "run", str(manifest), "--no-progress", "--json",
        ]  # fmt: skip
        done = subprocess.run(command, env=run_env(box), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"aihd run under valgrind exited {done.returncode}")
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if found is None:
            raise RuntimeError("valgrind printed no instruction count")
        return int(found.group(1).replace(",", ""))
