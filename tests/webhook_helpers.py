"""A plain HTTP listener for the tests: records what reaches it, answers what it is told.

It stands for a webhook receiver (to test the emulator's sender) and for a foreign host a
forged webhook names (to prove aihd never asks it anything).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(slots=True)
class Heard:
    """One request: when, its method and path, and its JSON body (None if not JSON)."""

    at: float
    method: str
    path: str
    body: Any


@dataclass(slots=True)
class Listener:
    url: str
    heard: list[Heard] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in turn; then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [h.body for h in self.heard]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.bodies()) < count:
            assert time.monotonic() < deadline, f"heard {len(self.bodies())} of {count}"
            time.sleep(0.02)
        return self.bodies()


@contextmanager
def listening() -> Iterator[Listener]:
    """A listener on a free loopback port, stopped at the end."""
    listener = Listener(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with listener.lock:
                listener.heard.append(Heard(time.monotonic(), self.command, self.path, body))
                status = listener.statuses.pop(0) if listener.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    listener.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
