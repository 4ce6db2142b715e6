"""`aihd serve` as a studio leaves it on, against `aihd sandbox` in a process of its own.

- serve-latency: from a folder's completion (its last photo written and closed) to its first
  order POST reaching the API, with room in the window; target: the quiet period + 2 s.
- serve-idle: CPU of the serve process while it watches 1,000 folders (their photos done),
  inotify and polling; target: under 1% of a core.
- serve-memory: peak memory (VmHWM) of the serve process after 10,000 photos served: ordered,
  collected by webhook, written; target: under 150 MB.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.common import NO_WINDOW_ORDERS, PYTHON, Figure, Sandbox, make_photos, sandbox

QUIET = 2.0
SECRET = "bench-webhook-secret-0123456789abcdef"
_TICKS = os.sysconf("SC_CLK_TCK")


def _manifest(root: Path, *, pattern: str = "listings/*/inside") -> Path:
    manifest = root / "bench.yaml"
    manifest.write_text(
        "version: 1\nledger: bench.ledger.sqlite\noutput: enhanced\nconcurrency: 8\n"
        f"rate_limit: {{orders: {NO_WINDOW_ORDERS}, per_seconds: 1}}\n"
        "retry: {attempts: 5, max_backoff: 1}\n"
        f"folders:\n  - path: {pattern}\n"
    )
    return manifest


class Served:
    """A running `aihd serve` child: its URL, CPU so far, peak memory so far."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url
        self.lines: list[str] = []  # its stderr, shown when it exits other than 0
        self.peak_kib = 0
        self._watching = True
        self._thread = threading.Thread(target=self._watch_memory, daemon=True)
        self._thread.start()

    def _watch_memory(self) -> None:
        while self._watching and self.proc.poll() is None:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                self.peak_kib = max(self.peak_kib, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return 0.0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._watching = False
        if code != 0:
            print("".join(self.lines[-30:]))
        return code


@contextmanager
def serving(manifest: Path, box: Sandbox, *extra: str) -> Iterator[Served]:
    env = {
        **os.environ,
        "AIHD_BASE_URL": box.url,
        "AIHD_API_KEY": box.key,
        "AIHD_WEBHOOK_SECRET": SECRET,
    }
    command = [PYTHON, "-m", "pipeline", "serve", str(manifest), "--listen", "127.0.0.1:0",
               "--quiet-period", f"{QUIET:g}s", "--poll-after", "10m", *extra]  # fmt: skip
    # stdout holds only the review desk's login link: not a figure.
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        if match := re.search(r"listening on (http://\S+)", line):
            url = match.group(1)
            break
    if not url:
        raise RuntimeError("aihd serve did not start")
    served = Served(proc, url)

    def keep() -> None:
        for line in proc.stderr or ():
            served.lines.append(line)

    threading.Thread(target=keep, daemon=True).start()
    _post(f"{box.url}/_sandbox/webhooks", {"urls": [f"{url}/hooks/{SECRET}"]})
    try:
        _wait(lambda: _health(url).get("catalog") == "read", 60)
        yield served
    finally:
        if proc.poll() is None:
            served.stop()


def _post(url: str, body: object) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _health(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            found: dict[str, object] = json.loads(answer.read())
            return found
    except OSError:
        return {}


def _wait(check: object, timeout: float, pause: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(pause)


def latency() -> list[Figure]:
    """Five listings written one after another; each one's completion to its first order."""
    delays = []
    with tempfile.TemporaryDirectory() as tmp, sandbox("1000/600") as box:
        root = Path(tmp)
        (root / "listings").mkdir()
        with serving(_manifest(root), box) as served:
            for listing in range(5):
                before = int(str(box.stats()["order_posts"]))
                folder = root / "listings" / f"L{listing}" / "inside"
                make_photos(folder, 3, start=100 * listing)  # written and closed in place
                complete = time.monotonic()
                _wait(lambda n=before: int(str(box.stats()["order_posts"])) > n, 60, pause=0.005)
                delays.append(time.monotonic() - complete)
                time.sleep(1.0)
            code = served.stop()
    median, worst = statistics.median(delays), max(delays)
    target = QUIET + 2.0
    print(
        f"serve latency: completion to first order {', '.join(f'{d:.2f}' for d in delays)} s; "
        f"median {median:.2f} s, worst {worst:.2f} s (target <= {target:g} s); exit {code}"
    )
    return [
        Figure(
            f"serve: a listing's completion to its first order, quiet period {QUIET:g} s, "
            "room in the window (5 listings of 3 photos)",
            f"median {median:.2f} s, worst {worst:.2f} s",
            f"<= {target:g} s (quiet period + 2 s)",
            worst <= target and code == 0,
            "python -m bench serve-latency",
        )
    ]


def idle() -> list[Figure]:
    """1,000 listing folders, their photos done; then CPU over 60 s of watching them."""
    figures = []
    modes = (("inotify", ()), ("polling every 2 s", ("--poll", "2s")), ("polling every 10 s",
             ("--poll", "10s")))  # fmt: skip
    for mode, extra in modes:
        percent, code = _idle_cpu(extra)
        print(f"serve idle ({mode}): {percent:.2f}% of a core over 60 s; exit {code}")
        # The target is the default's (inotify); polling, for network mounts, costs with
        # its interval: a figure beside it.
        met = percent < 1.0 and code == 0 if mode == "inotify" else None
        figures.append(
            Figure(
                f"serve: CPU while idle, watching 1,000 folders ({mode})",
                f"{percent:.2f}% of a core (60 s after all were done), exit {code}",
                "< 1% of a core" if mode == "inotify" else "none (the target is inotify's)",
                met,
                "python -m bench serve-idle",
            )
        )
    return figures


def _idle_cpu(extra: Sequence[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        root = Path(tmp)
        for listing in range(1000):
            make_photos(root / "listings" / f"L{listing:04d}" / "inside", 1, start=listing)
        with serving(_manifest(root), box, *extra) as served:
            _wait(lambda: served.metric('aihd_photos{state="completed"}') == 1000, 600, 0.5)
            time.sleep(10.0)  # the last results written, the last looks taken
            cpu, started = served.cpu_seconds(), time.monotonic()
            time.sleep(60.0)
            percent = 100 * (served.cpu_seconds() - cpu) / (time.monotonic() - started)
            return percent, served.stop()


def memory() -> list[Figure]:
    """10,000 tiny photos in 100 folders served to the end; the serve process's peak."""
    with tempfile.TemporaryDirectory() as tmp, sandbox() as box:
        root = Path(tmp)
        for listing in range(100):
            make_photos(root / "listings" / f"L{listing:03d}" / "inside", 100, 100 * listing)
        started = time.monotonic()
        with serving(_manifest(root), box) as served:
            _wait(lambda: served.metric('aihd_photos{state="completed"}') == 10_000, 1800, 1.0)
            seconds = time.monotonic() - started
            cpu = served.cpu_seconds()
            reads = served.metric('aihd_result_reads_total{cause="webhook"}')
            code = served.stop()
            peak = served.peak_kib / 1024
    print(
        f"serve memory: 10,000 photos served in {seconds:.0f} s ({reads:.0f} collected by "
        f"webhook), CPU {cpu:.1f} s ({1000 * cpu / 10_000:.2f} ms per photo); peak {peak:.0f} "
        f"MB (target < 150 MB); exit {code}"
    )
    return [
        Figure(
            "serve: peak memory after 10,000 photos served (ordered, collected by webhook, "
            "written)",
            f"{peak:.0f} MB ({seconds:.0f} s, {1000 * cpu / 10_000:.2f} ms CPU per photo)",
            "< 150 MB",
            peak < 150 and code == 0,
            "python -m bench serve-memory",
        )
    ]
