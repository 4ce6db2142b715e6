"""Which file is a SQLite ledger: a new one is made only where no file exists, whole.

A ledger emptied to 0 bytes (a failed copy, a full disk) opened as SQLite looks like a new, empty
database; taken as one, every photo would be ordered and paid again. So a file that exists must
already be an aihd ledger (migrations.py refuses the rest), and a new ledger is built in a
temporary file beside its path and linked into place: no other process ever sees it half made,
and a file that appeared there meanwhile is never replaced.
"""

from __future__ import annotations

__all__ = ["make_ledger_file", "not_a_database", "refuse_empty"]

import errno
import os
import secrets
import sqlite3
from pathlib import Path

from pipeline.errors import NotALedger
from pipeline.ledger.migrations import empty_message, migrate

# Filesystems without hard links answer these; there the file is renamed into place instead.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def make_ledger_file(path: Path, timeout: float) -> None:
    """Create the ledger at ``path`` (which does not exist) with its whole schema; if another
    process creates it first, keep theirs (it is whole: it was linked into place whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")  # scans skip dot files
    # os.open, not mkstemp: the ledger gets the mode a plain new file would (umask), not 0600.
    os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666))
    try:
        conn = sqlite3.connect(temp, timeout=timeout, isolation_level=None)
        try:
            migrate(conn, str(path), new=True)
            conn.execute("PRAGMA journal_mode = WAL")  # kept in the file; its -wal goes at close
        finally:
            conn.close()
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another run made it first
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # No hard links here: a rename, after a last look (it replaces what it finds).
            if not os.path.lexists(path):
                os.rename(temp, path)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


def refuse_empty(path: Path) -> None:
    """An existing file of 0 bytes is not a ledger (SQLite would take it as a new one)."""
    if path.stat().st_size == 0:
        raise NotALedger(empty_message(str(path)))


def not_a_database(path: Path, exc: sqlite3.DatabaseError) -> NotALedger:
    """The error for a file SQLite cannot read as a database (garbage, a truncated header)."""
    return NotALedger(
        f"cannot open ledger {path}: it is not a database ({exc}), so not an aihd ledger; "
        "nothing was spent: restore it from a backup, or name another file for the ledger"
    )
