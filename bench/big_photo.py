"""A 50 MB photo is streamed: `aihd run`'s peak memory with it, beside a run of one tiny photo.

Both runs are fresh processes against a fresh sandbox; the figure is the growth of the run
process's peak RSS (ru_maxrss from os.wait4). Reading the photo into memory would add 50 MB.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Figure, run_aihd, sandbox, write_manifest

BIG_BYTES = 50 * 1024 * 1024  # the API's limit, exactly
TINY_BYTES = 14
COMMAND = "python -m bench big-photo"


def _photo(path: Path, size: int) -> None:
    """A JPEG by its first and last bytes, sparse in between: made in no time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(size - 2)
        f.seek(size - 2)
        f.write(b"\xff\xd9")


def _peak_mb(size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        root = Path(tmp)
        _photo(root / "photos" / "p.jpg", size)
        measured = run_aihd(write_manifest(root, orders=100, per_seconds=1, concurrency=1), box)
        charged = int(str(box.stats()["orders_charged"]))
    if charged != 1:
        raise RuntimeError(f"the {size}-byte photo was not ordered (charges: {charged})")
    return measured.peak_rss_mb


def run() -> list[Figure]:
    """Peak memory growth of a run with a 50 MB photo over a run with a tiny one."""
    tiny, big = _peak_mb(TINY_BYTES), _peak_mb(BIG_BYTES)
    growth = big - tiny
    print(
        f"big photo: peak RSS {big:.1f} MB with a 50 MB photo vs {tiny:.1f} MB with a "
        f"{TINY_BYTES}-byte one: +{growth:.1f} MB (target < 10)"
    )
    return [
        Figure(
            "a 50 MB photo: growth of the run's peak memory over a tiny photo",
            f"+{growth:.1f} MB ({big:.0f} MB vs {tiny:.0f} MB)",
            "< 10 MB",
            growth < 10,
            COMMAND,
        )
    ]
