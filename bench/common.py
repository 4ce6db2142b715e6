"""What every benchmark needs: a sandbox in its own process, photos, and a measured `aihd run`.

The sandbox is `python -m pipeline sandbox` in a child process of its own, so the CPU time and
peak memory measured for `aihd run` (another child, reaped with os.wait4) are the client's alone.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PYTHON = sys.executable
_TICKS = os.sysconf("SC_CLK_TCK")
NO_WINDOW = "100000/1"  # an order window no run here comes near (the most --window takes)


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A running `aihd sandbox` child: its URL, key and process id."""

    url: str
    key: str = field(repr=False)
    pid: int

    def set_faults(self, **faults: float) -> None:
        """POST /_sandbox/faults, e.g. latency=0.05 (seconds added to every /v1 request)."""
        request = urllib.request.Request(
            f"{self.url}/_sandbox/faults", data=json.dumps(faults).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/_sandbox/stats", timeout=10) as answer:
            stats: dict[str, object] = json.loads(answer.read())
            return stats

    def rate_limited(self) -> int:
        """The 429s the sandbox answered so far."""
        return int(str(self.stats()["rate_limited"]))

    def cpu_seconds(self) -> float:
        """User + system CPU the sandbox process has used so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


@contextmanager
def sandbox(
    window: str = NO_WINDOW, *, latency: float = 0.0, time_scale: float = 0.01
) -> Iterator[Sandbox]:
    """`aihd sandbox` on a free loopback port in a process of its own."""
    options = ["--window", window, "--time-scale", str(time_scale)]
    with child_sandbox(["pipeline", "sandbox"], options) as box:
        if latency:
            box.set_faults(latency=latency)
        yield box


@contextmanager
def child_sandbox(module: list[str], options: Sequence[str] = ()) -> Iterator[Sandbox]:
    """`python -m MODULE... --port 0 --key KEY OPTIONS` in a process of its own, until it
    prints its loopback URL; terminated when the block ends."""
    key = secrets.token_urlsafe(16)
    command = [PYTHON, "-m", *module, "--port", "0", "--key", key, *options]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if match is None:
            raise RuntimeError(f"{' '.join(module)} did not start: {line!r}")
        yield Sandbox(match.group(1), key, proc.pid)
    finally:
        proc.terminate()
        # A sandbox that served 10,000 results removes their files as it stops.
        proc.wait(timeout=60)


def make_photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    """Tiny distinct files the JPEG check accepts (SOI, APP0, a counter, EOI): no Pillow."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        path = folder / f"p{n:06d}.jpg"
        path.write_bytes(b"\xff\xd8\xff\xe0" + n.to_bytes(8, "big") + b"\xff\xd9")
        paths.append(path)
    return paths


def write_manifest(
    root: Path,
    *,
    orders: int,
    per_seconds: float,
    concurrency: int,
    ledger: str = "bench.ledger.sqlite",
    folders: tuple[str, ...] = ("photos",),
) -> Path:
    """A manifest over root/photos with the given order window and concurrency; its ledger
    beside it (never the user's own account ledger)."""
    manifest = root / "bench.yaml"
    listed = "".join(f"  - path: {folder}\n" for folder in folders)
    manifest.write_text(
        "version: 1\n"
        f"ledger: {ledger}\n"
        f"concurrency: {concurrency}\n"
        f"rate_limit: {{orders: {orders}, per_seconds: {per_seconds}}}\n"
        "retry: {attempts: 5, max_backoff: 1}\n"
        f"folders:\n{listed}"
    )
    return manifest


@dataclass(frozen=True, slots=True)
class Measured:
    """One child process, reaped with os.wait4: its own resources, not the benchmark's."""

    exit_code: int
    wall: float
    cpu: float  # user + system seconds of the child alone
    peak_rss_mb: float  # ru_maxrss of the child (KiB on Linux)
    stdout: str


def measure(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command as a child process and reap it with its own resource usage.

    The peak is the child's VmHWM, read from /proc while it runs, not wait4's ru_maxrss:
    Linux folds the high-water mark of the memory a child exec'd from (this benchmark's own,
    through vfork) into ru_maxrss, so after a big benchmark a small run looked as big as this
    process. VmHWM belongs to the exec'd program alone and only grows; it is read every 20 ms until
    the child exits (so a peak in its last 20 ms would be missed).
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.DEVNULL)
        peak_kib = 0
        exited = os.pidfd_open(proc.pid)  # readable the moment it exits: the wall time is exact
        try:
            while not select.select([exited], [], [], 0.02)[0]:
                peak_kib = max(peak_kib, _high_water_kib(proc.pid))
        finally:
            os.close(exited)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        stdout = out.read()
    return Measured(
        exit_code=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak_kib / 1024,
        stdout=stdout,
    )


def _high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), 0 if it is gone or not yet exec'd."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def python_pace() -> float:
    """CPU seconds this machine takes now for a fixed pure-Python loop (10 M additions).

    On this shared VM the same code's CPU per photo moved 2.5x between days (bench/RESULTS.md):
    printed beside a figure in seconds, it tells a slow hour from slow code."""
    started = time.process_time()
    total = 0
    for n in range(10_000_000):
        total += n
    return time.process_time() - started


def run_env(box: Sandbox) -> dict[str, str]:
    return {**os.environ, "AIHD_BASE_URL": box.url, "AIHD_API_KEY": box.key}


def run_aihd(manifest: Path, box: Sandbox, *extra: str, loop: str = "") -> Measured:
    """`aihd run MANIFEST --no-progress --json` as a user runs it, measured.

    ``loop="asyncio"`` runs it on asyncio's own event loop instead of uvloop.
    """
    command = [PYTHON, "-m", "pipeline", "run", str(manifest), "--no-progress", "--json", *extra]
    measured = measure(command, {**run_env(box), "AIHD_EVENT_LOOP": loop})
    if measured.exit_code != 0:
        raise RuntimeError(f"aihd run exited {measured.exit_code}: {measured.stdout[-500:]}")
    return measured


def summary(measured: Measured) -> dict[str, object]:
    """The run's --json summary."""
    parsed: dict[str, object] = json.loads(measured.stdout)
    return parsed


def order_times(manifest: Path, box: Sandbox, *extra: str) -> list[float]:
    """Each order's `submitted_at` (client clock, when its answer came), from `aihd export`."""
    out = subprocess.run(
        [PYTHON, "-m", "pipeline", "export", str(manifest), "--format", "jsonl", *extra],
        env=run_env(box),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return sorted(
        datetime.fromisoformat(r["submitted_at"]).timestamp() for r in rows if r["submitted_at"]
    )


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure beside its target, for the console and bench/RESULTS.md."""

    benchmark: str
    figure: str
    target: str
    met: bool | None  # None: no target, only a figure to report
    command: str

    def row(self, machine: str) -> str:
        mark = {True: "met", False: "MISSED", None: "figure only"}[self.met]
        return (
            f"| {self.benchmark} | {self.figure} | {self.target} ({mark}) | {machine} "
            f"| `{self.command}` |"
        )


TABLE_HEAD = "| benchmark | figure | target | machine | command |\n| --- | --- | --- | --- | --- |"


def _busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _own_seconds() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(slots=True)
class OtherLoad:
    """CPU that processes other than the benchmark's used while it ran, in cores."""

    cores: float = 0.0

    def describe(self) -> str:
        return f"{os.cpu_count()} cores, others busy {self.cores:.1f} core"


@contextmanager
def other_load() -> Iterator[OtherLoad]:
    """Measure the CPU others used during the block: figures taken on a busy box say so."""
    load = OtherLoad()
    busy, own, started = _busy_seconds(), _own_seconds(), time.perf_counter()
    yield load
    others = (_busy_seconds() - busy) - (_own_seconds() - own)
    load.cores = max(0.0, others / (time.perf_counter() - started))
