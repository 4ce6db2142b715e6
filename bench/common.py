"""What every benchmark needs: a sandbox in its own process, photos, and a measured run."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable


@dataclass(frozen=True)
class Sandbox:
    url: str
    key: str

    def set_faults(self, **faults: float) -> None:
        body = json.dumps(faults).encode()
        request = urllib.request.Request(f"{self.url}/_sandbox/faults", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/_sandbox/stats", timeout=10) as answer:
            stats: dict[str, object] = json.loads(answer.read())
            return stats


@contextmanager
def sandbox(window: str = "1000000/1", time_scale: float = 0.01) -> Iterator[Sandbox]:
    """`aihd sandbox` in a process of its own, so the client is measured alone."""
    key = secrets.token_urlsafe(16)
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "pipeline",
            "sandbox",
            "--port",
            "0",
            "--key",
            key,
            "--window",
            window,
            "--time-scale",
            str(time_scale),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if match is None:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield Sandbox(match.group(1), key)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_photos(folder: Path, count: int, start: int = 0) -> None:
    """Tiny distinct files a JPEG check accepts: fast to make by the hundred thousand."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(start, start + count):
        (folder / f"p{n:06d}.jpg").write_bytes(
            b"\xff\xd8\xff\xe0" + n.to_bytes(8, "big") + b"\xff\xd9"
        )


def write_manifest(root: Path, *, orders: int, per_seconds: float, concurrency: int) -> Path:
    manifest = root / "bench.yaml"
    manifest.write_text(
        "version: 1\n"
        f"concurrency: {concurrency}\n"
        f"rate_limit: {{orders: {orders}, per_seconds: {per_seconds}}}\n"
        "retry: {attempts: 5, max_backoff: 1}\n"
        "folders:\n  - path: photos\n"
    )
    return manifest


@dataclass(frozen=True)
class Measured:
    exit_code: int
    wall: float
    cpu: float  # user + system seconds of the aihd process
    peak_rss_mb: float
    summary: dict[str, object]


def run_aihd(manifest: Path, box: Sandbox, *extra: str) -> Measured:
    """`aihd run` as a user runs it, with its own CPU time and peak memory."""
    env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "pipeline", "run", str(manifest), "--no-progress", "--json", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        exit_code=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        summary=json.loads(out) if out.strip() else {},
    )


def order_times(manifest: Path, box: Sandbox) -> list[float]:
    """When each order was answered, from the ledger (`aihd export`)."""
    env = {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}
    out = subprocess.run(
        [PYTHON, "-m", "pipeline", "export", str(manifest), "--format", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from datetime import datetime

    return sorted(
        datetime.fromisoformat(row["submitted_at"]).timestamp()
        for row in map(json.loads, out.splitlines())
        if row.get("submitted_at")
    )


def row(name: str, figure: str, target: str, ok: bool, command: str) -> str:
    mark = "meets" if ok else "MISSES"
    return f"| {name} | {figure} | {target} ({mark}) | {os.cpu_count()} cores | `{command}` |"
