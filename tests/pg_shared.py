"""One PostgreSQL server for all the pytest-xdist workers of a run.

Each worker is a process with its own session fixtures, so each would start a server of its
own (an initdb: seconds of CPU). Each test has a database of its own on the server, so the
workers can share one: the first worker that needs it starts it, the last one to finish
stops it, with the count kept in a file under the run's temporary folder and a file lock
around it. The controller stops a server a crashed worker left (``stop_left_over``).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pg_server import PgServer

_RECORD = "pg-server.json"


@contextmanager
def _locked(folder: Path) -> Iterator[Path]:
    """The record's path, with the run's lock held."""
    with (folder / "pg-server.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder / _RECORD
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def shared_server(folder: Path, bin_dir: Path) -> Iterator[PgServer]:
    """The run's server (started if no worker has one running) while this worker uses it."""
    with _locked(folder) as record:
        if record.exists():
            state = json.loads(record.read_text())
            server = PgServer.attach(Path(state["bin"]), Path(state["root"]))
        else:
            server = PgServer(bin_dir)  # KeyError: no `postgres` user to run it as
            state = {"bin": str(server.bin), "root": str(server.root), "users": 0}
        state["users"] += 1
        record.write_text(json.dumps(state))
    try:
        yield server
    finally:
        with _locked(folder) as record:
            state = json.loads(record.read_text())
            state["users"] -= 1
            if state["users"] > 0:
                record.write_text(json.dumps(state))
            else:
                record.unlink()
                server.stop()


def stop_left_over(folder: Path) -> None:
    """Stop the run's server if a worker that used it never said it was done."""
    with _locked(folder) as record:
        if record.exists():
            state = json.loads(record.read_text())
            record.unlink()
            PgServer.attach(Path(state["bin"]), Path(state["root"])).stop()
