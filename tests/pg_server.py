"""A throwaway PostgreSQL server in a temporary folder, for the tests, the benchmarks and
`make try-postgres`: the system's ``initdb``/``pg_ctl``, a unix socket in that folder, no TCP.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
``postgres`` system user (the Debian package creates it), in a folder made its own.

    python -m tests.pg_server      # start one, print its URL, stop it (and remove all) on Enter
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

_MEMORY = Path("/dev/shm")  # noqa: S108 -- mkdtemp makes a folder of our own (0700) inside


def find_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, newest version first; None: not installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


class PgServer:
    """One server; ``url(db)`` names a database on it, ``new_database()`` makes an empty one."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        self.bin = bin_dir
        # Without fsync nothing here is meant to outlive the machine: the files go to memory
        # (/dev/shm) where there is one, which makes a new database and the last rmtree
        # several times faster than on a disk (0.14 s against 0.96 s a database under load).
        memory = _MEMORY if not fsync and _MEMORY.is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="aihd-pg-", dir=memory))
        self.data = self.root / "data"
        self.user: str | None = None  # the system user the server runs as (None: this one)
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)  # KeyError: no such user
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._as_owner(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "aihd", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C"]
        )  # fmt: skip
        options = f"-k {self.root} -c listen_addresses='' -c max_connections=100"
        if not fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._as_owner(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
             "-o", options, "-w", "-t", "60", "start"]
        )  # fmt: skip

    @classmethod
    def attach(cls, bin_dir: Path, root: Path) -> PgServer:
        """The server another process started in ``root`` (tests/pg_shared.py)."""
        server = cls.__new__(cls)
        server.bin, server.root, server.data = bin_dir, root, root / "data"
        server.user = "postgres" if os.geteuid() == 0 else None
        return server

    def _as_owner(self, argv: list[str]) -> None:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://aihd@/{database}?host={self.root}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            # PostgreSQL 15 copies the template through the WAL by default, which costs more
            # than the copy of its files for the small template of a test database.
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._as_owner(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    bin_dir = find_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL here: apt-get install postgresql (initdb, pg_ctl)")
    server = PgServer(bin_dir, fsync=True)
    try:
        url = server.new_database()
        print(f"PostgreSQL is up; a ledger for you:\n\n  export AIHD_LEDGER='{url}'\n")
        print("Press Enter to stop it and remove its folder.")
        input()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
