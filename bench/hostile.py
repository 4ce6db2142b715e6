"""Peak memory under a hostile server stays within the normal run's peak plus 50 MB.

One hostile emulator (`python -m tests.hostile_server`, a process of its own) serves every
case. Per case: 8 tiny photos in a fresh folder, `aihd run` with the emulator behaving (or, for
echo-key, misbehaving), then the mode switched on through `POST /_hostile/hostility`, then
`aihd collect`. The figure per mode is the larger of the two processes' peaks (VmHWM), beside
the same for a normal run and collect. The modes send 1.5 GB answers and results, a gzip'd
answer that inflates to 1 GB, results trickled a byte every 0.5 s, 13000 x 13000 px PNGs,
redirects and internal result URLs.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from dataclasses import asdict
from pathlib import Path

from bench.common import PYTHON, Figure, Sandbox, child_sandbox, make_photos, measure
from tests.hostile_server import MODES, Hostility

COMMAND = "python -m bench hostile"
PHOTOS = 8
ALLOWANCE_MB = 50.0


def _set(box: Sandbox, hostility: Hostility) -> None:
    request = urllib.request.Request(
        f"{box.url}/_hostile/hostility", data=json.dumps(asdict(hostility)).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()


def _peak_mb(box: Sandbox, hostility: Hostility) -> tuple[float, str, int]:
    """The larger peak of `aihd run` and `aihd collect`, what collect reported, and how many
    photos it found ordered (0: the case measured no collect at all)."""
    env = {"AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key, "PATH": "/usr/bin:/bin"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photos(root / "photos", PHOTOS)
        manifest = root / "bench.yaml"
        manifest.write_text(
            # A ledger of the case's own: the account's default one (~/.local/state/aihd/)
            # would outlive the bench and know every case's photos (the same bytes each time)
            # as ordered already, leaving collect nothing to fetch from the hostile server.
            "version: 1\nledger: bench.ledger.sqlite\nconcurrency: 4\n"
            "rate_limit: {orders: 1000, per_seconds: 1}\n"
            "retry: {attempts: 1, max_backoff: 1}\nfolders:\n  - path: photos\n"
        )
        _set(box, hostility if hostility.echo_key else Hostility())
        aihd = [PYTHON, "-m", "pipeline"]
        ran = measure([*aihd, "run", str(manifest), "--no-progress", "--json"], env)
        _set(box, hostility)
        collected = measure(
            [*aihd, "collect", str(manifest), "--no-progress", "--json", "--request-timeout", "2"],
            env,
        )
    outcome, ordered = "?", 0
    if collected.stdout.strip():
        report = json.loads(collected.stdout)
        outcome = f"completed {report['completed']}, failed {report['failed']}"
        outcome += f", waiting {report['waiting']}"
        ordered = report["completed"] + report["failed"] + report["waiting"]
    return max(ran.peak_rss_mb, collected.peak_rss_mb), outcome, ordered


def run() -> list[Figure]:
    """Each mode's peak beside the normal peak; the target is the normal peak + 50 MB."""
    with child_sandbox(["tests.hostile_server"]) as box:
        normal, outcome, _ = _peak_mb(box, Hostility())
        print(f"hostile: normal run + collect: peak {normal:.1f} MB ({outcome})")
        peaks, idle = {}, []
        for mode, hostility in MODES.items():
            peaks[mode], outcome, ordered = _peak_mb(box, hostility)
            print(f"hostile: {mode}: peak {peaks[mode]:.1f} MB ({outcome})")
            # echo-key misbehaves at the run itself: nothing is ordered, nothing to collect.
            if ordered != PHOTOS and not hostility.echo_key:
                idle.append(mode)
    worst = max(peaks, key=peaks.__getitem__)
    growth = peaks[worst] - normal
    listed = ", ".join(f"{mode} {peak:.0f}" for mode, peak in peaks.items())
    if idle:  # a mode whose collect met none of its photos was not measured at all
        listed += f"; collect met no photo in {', '.join(idle)}"
    return [
        Figure(
            f"hostile server: peak memory of run + collect, {PHOTOS} photos, per mode (MB)",
            f"worst {worst}: +{growth:.1f} MB over normal {normal:.0f} MB ({listed})",
            f"<= normal + {ALLOWANCE_MB:.0f} MB",
            growth <= ALLOWANCE_MB and not idle,
            COMMAND,
        )
    ]
