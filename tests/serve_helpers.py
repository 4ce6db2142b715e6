"""Running the real ``aihd serve`` in a subprocess against a sandbox, as a studio would."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ledger import PhotoRow, State, open_ledger
from pipeline.sandbox import Sandbox, Webhooks
from tests.cli_helpers import aihd_env

SECRET = "test-webhook-secret-0123456789abcdef"  # AIHD_WEBHOOK_SECRET of every test serve
# Fast: folders quiet for 1 s, results polled only long after a webhook had its chance.
SERVE_FAST = [
    "--listen",
    "127.0.0.1:0",
    "--quiet-period",
    "1s",
    "--poll-after",
    "60s",
    "--request-timeout",
    "10",
    "--settle",
    "0.5",
]
STOP_LIMIT_SECONDS = 10.0  # the promise: SIGTERM ends the service within 10 s
_LISTENING = re.compile(r"listening on (http://\S+)")
RUNNING: list[subprocess.Popen[str]] = []  # killed by `kill_leftovers` if a test fails midway


def kill_leftovers() -> None:
    while RUNNING:
        process = RUNNING.pop()
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stderr, process.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Served:
    """A running ``aihd serve``: its process, its URL, what it wrote on stderr."""

    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    out_lines: list[str] = field(default_factory=list)  # stdout: the desk's login link
    _reader: threading.Thread | None = None
    _out_reader: threading.Thread | None = None

    @property
    def hooks(self) -> str:
        return f"{self.url}/hooks/{SECRET}"

    def stderr(self) -> str:
        return "".join(self.lines)

    def login_url(self) -> str:
        """The review desk's one-time login link, as printed on stdout."""
        wait_until(lambda: bool(self.out_lines), timeout=20, what="the desk's login link")
        return self.out_lines[0].strip()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as answer:  # noqa: S310
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str) -> float:
        """One sample of /metrics, e.g. 'aihd_result_reads_total{cause="poll"}'."""
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise AssertionError(f"no metric {name}")

    def post(self, body: bytes, *, secret: str = SECRET) -> tuple[int, float]:
        """POST a webhook; its status and how long the answer took."""
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/hooks/{secret}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        return status, time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Signal it; its exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=60)
        finally:
            for reader in (self._reader, self._out_reader):
                if reader is not None:
                    reader.join(timeout=5)
            for stream in (self.process.stderr, self.process.stdout):
                if stream is not None:
                    stream.close()
        return code, time.monotonic() - started


def spawn_serve(
    manifests: Sequence[Path],
    sandbox: Sandbox,
    *extra: str,
    env: Mapping[str, str] | None = None,
    webhooks: bool = True,
) -> Served:
    """Start ``aihd serve`` and wait until it listens; the sandbox's webhooks go to it
    (``webhooks``), one URL of receivers this test may add to."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", *map(str, manifests), *SERVE_FAST, *extra],
        env=aihd_env(sandbox, extra={"AIHD_WEBHOOK_SECRET": SECRET, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    RUNNING.append(process)
    served = Served(process)
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            served.lines.append(line)
            if not found.is_set() and (match := _LISTENING.search(line)):
                served.url = match.group(1)
                found.set()
        found.set()

    def read_out() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.out_lines.append(line)

    served._reader = threading.Thread(target=read, daemon=True)
    served._reader.start()
    served._out_reader = threading.Thread(target=read_out, daemon=True)
    served._out_reader.start()
    found.wait(timeout=60)
    assert served.url, f"aihd serve did not start:\n{served.stderr()}"
    if webhooks:
        sandbox.set_webhooks(Webhooks(urls=(served.hooks,)))
    return served


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def rows_of(ledger: Path | str) -> list[PhotoRow]:
    opened = open_ledger(ledger)
    try:
        return opened.photos()
    finally:
        opened.close()


def all_completed(ledger: Path | str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = rows_of(ledger)
        return len(rows) == count and all(r.state is State.COMPLETED for r in rows)

    return check


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def webhook_json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode()
