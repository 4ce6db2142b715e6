"""`python -m bench NAME|all`: each benchmark prints its figures beside its target.

window · open-pipe · client-cost · big-photo · baseline. The sandbox runs in its own process.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.baseline import sequential
from bench.common import make_photos, order_times, row, run_aihd, sandbox, write_manifest


def window() -> list[str]:
    """60 photos under 10 orders per 2 s: the window's bound over the time taken, and 429s."""
    with tempfile.TemporaryDirectory() as tmp, sandbox(window="10/2") as box:
        root = Path(tmp)
        make_photos(root / "photos", 60)
        manifest = write_manifest(root, orders=10, per_seconds=2, concurrency=8)
        measured = run_aihd(manifest, box)
        times = order_times(manifest, box)
        # 60 orders at 10 per 2 s: the 51st cannot go before 5 windows after the 1st.
        bound = (60 / 10 - 1) * 2
        span = times[-1] - times[0]
        ratio = bound / span
        rejected = int(box.stats()["rate_limited"])  # type: ignore[call-overload]
        print(
            f"window: {len(times)} orders in {span:.2f}s (bound {bound:.0f}s): "
            f"ratio {ratio:.3f} (target >= 0.97), 429s {rejected} (target 0); "
            f"exit {measured.exit_code}"
        )
        return [
            row(
                "window: 60 photos, 10 orders / 2 s",
                f"{ratio:.3f} of the bound, {rejected} 429s",
                ">= 0.97, 0 429s",
                ratio >= 0.97 and rejected == 0,
                "python -m bench window",
            )
        ]


def open_pipe() -> list[str]:
    """No window, 50 ms per request, 32 in flight: the rate against concurrency / latency."""
    photos, latency, concurrency = 600, 0.05, 32
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        box.set_faults(latency=latency)
        root = Path(tmp)
        make_photos(root / "photos", photos)
        manifest = write_manifest(root, orders=1_000_000, per_seconds=1, concurrency=concurrency)
        measured = run_aihd(manifest, box)
        times = order_times(manifest, box)
        rate = (len(times) - 1) / (times[-1] - times[0])
        # Each photo is two round trips (upload, then submit), each `latency` long.
        bound = concurrency / (2 * latency)
        ratio = rate / bound
        print(
            f"open pipe: {rate:.0f} photos/s, bound {bound:.0f}/s: ratio {ratio:.3f} "
            f"(target >= 0.9); exit {measured.exit_code}"
        )
        return [
            row(
                "open pipe: 600 photos, 50 ms latency, concurrency 32",
                f"{rate:.0f} photos/s = {ratio:.2f} of {bound:.0f}/s",
                ">= 0.9",
                ratio >= 0.9,
                "python -m bench open-pipe",
            )
        ]


def client_cost() -> list[str]:
    """CPU per photo and peak memory of `aihd run`; then a re-run over done photos."""
    rows = []
    for count in (20_000, 100_000):
        with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
            root = Path(tmp)
            make_photos(root / "photos", count)
            manifest = write_manifest(root, orders=1_000_000, per_seconds=1, concurrency=32)
            first = run_aihd(manifest, box)
            again = run_aihd(manifest, box)
            cpu_ms = first.cpu / count * 1000
            print(
                f"client cost, {count} photos: {cpu_ms:.2f} ms CPU/photo (target <= 1), "
                f"peak {first.peak_rss_mb:.0f} MB (target <= 100 for 100,000); re-run "
                f"{again.wall:.2f}s wall, {again.summary.get('seconds')}s in the run "
                f"(target < 1 s for 20,000); exits {first.exit_code}/{again.exit_code}"
            )
            rows.append(
                row(
                    f"client cost: {count:,} photos, CPU per photo",
                    f"{cpu_ms:.2f} ms",
                    "<= 1 ms",
                    cpu_ms <= 1,
                    "python -m bench client-cost",
                )
            )
            rows.append(
                row(
                    f"client cost: {count:,} photos, peak memory",
                    f"{first.peak_rss_mb:.0f} MB",
                    "<= 100 MB (100,000)",
                    first.peak_rss_mb <= 100,
                    "python -m bench client-cost",
                )
            )
            if count == 20_000:
                rows.append(
                    row(
                        "re-run over 20,000 done photos (whole process)",
                        f"{again.wall:.2f} s",
                        "< 1 s",
                        again.wall < 1,
                        "python -m bench client-cost",
                    )
                )
    return rows


def big_photo() -> list[str]:
    """A 50 MB photo is streamed: peak memory beside a run of one tiny photo."""
    peaks = []
    for size in (14, 50 * 1024 * 1024):
        with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
            root = Path(tmp)
            photo = root / "photos" / "p.jpg"
            photo.parent.mkdir()
            with photo.open("wb") as f:
                f.write(b"\xff\xd8\xff\xe0")
                f.truncate(size - 2)
                f.seek(size - 2)
                f.write(b"\xff\xd9")
            manifest = write_manifest(root, orders=100, per_seconds=1, concurrency=1)
            peaks.append(run_aihd(manifest, box).peak_rss_mb)
    growth = peaks[1] - peaks[0]
    print(
        f"big photo: peak {peaks[1]:.1f} MB with 50 MB vs {peaks[0]:.1f} MB with 14 bytes: "
        f"+{growth:.1f} MB (target < 10)"
    )
    return [
        row(
            "a 50 MB photo: growth of peak memory",
            f"+{growth:.1f} MB",
            "< 10 MB",
            growth < 10,
            "python -m bench big-photo",
        )
    ]


def baseline() -> list[str]:
    """A plain sequential script beside `aihd run` on the same 200 photos, in one run."""
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        box.set_faults(latency=0.02)
        root = Path(tmp)
        make_photos(root / "photos", 200)
        plain = asyncio.run(sequential(box.url, box.key, sorted((root / "photos").glob("*"))))
        fresh = root / "second"
        make_photos(fresh / "photos", 200, start=1000)
        manifest = write_manifest(fresh, orders=1_000_000, per_seconds=1, concurrency=8)
        measured = run_aihd(manifest, box)
        ratio = plain / measured.wall
        print(
            f"baseline: sequential script {plain:.2f}s, aihd run {measured.wall:.2f}s "
            f"(whole process, concurrency 8): {ratio:.1f}x"
        )
        return [
            row(
                "beside a sequential script: 200 photos, 20 ms latency",
                f"{ratio:.1f}x faster ({plain:.1f} s vs {measured.wall:.1f} s)",
                "faster",
                ratio > 1,
                "python -m bench baseline",
            )
        ]


BENCHMARKS: dict[str, Callable[[], list[str]]] = {
    "window": window,
    "open-pipe": open_pipe,
    "client-cost": client_cost,
    "big-photo": big_photo,
    "baseline": baseline,
}


def main(names: list[str]) -> None:
    chosen = list(BENCHMARKS) if names in ([], ["all"]) else names
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown}; choose from {', '.join(BENCHMARKS)} or all")
    rows = []
    for name in chosen:
        rows += BENCHMARKS[name]()
    print("\n| benchmark | figure | target | machine | command |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


main(sys.argv[1:])
