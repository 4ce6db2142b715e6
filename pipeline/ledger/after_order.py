"""After the order, one SQL for both stores: collect's claims on results, the files deliver
wrote, and the photo folders the ledger knows (which deliver must never write into).

Each function takes a connection with SQLite's ``?`` placeholders: a ``sqlite3.Connection``,
or the PostgreSQL store's ``postgres_sql.SqliteStyle`` adapter. Times are Unix seconds, from
the caller's clock (the PostgreSQL store passes the database's).

Collect's claims are a table apart from the runs' (``photos.claimed_by``): a run's claim is on a
photo still to be ordered, a collect's on a charged photo's results; neither waits on the other.
"""

from __future__ import annotations

__all__ = [
    "Conn",
    "Cursor",
    "claim_result",
    "delivered",
    "delivered_made_from",
    "photo_folders",
    "record_delivered",
    "release_result_claims",
    "renew_result_claims",
]

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pipeline.bootclock import owner_alive
from pipeline.filenames import stored


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


class Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


def claim_result(conn: Conn, photo_id: int, owner: str, now: float, lease: float) -> bool:
    """Take the photo's results for this collect unless another live collect holds them."""
    taken = conn.execute(
        "INSERT INTO collect_claims (photo_id, owner, claim_until) VALUES (?, ?, ?) "
        "ON CONFLICT (photo_id) DO UPDATE SET owner = excluded.owner, "
        "claim_until = excluded.claim_until "
        "WHERE collect_claims.owner = excluded.owner OR collect_claims.claim_until < ?",
        (photo_id, owner, now + lease, now),
    )
    if taken.rowcount:
        return True
    row = conn.execute(
        "SELECT owner FROM collect_claims WHERE photo_id = ?", (photo_id,)
    ).fetchone()
    if row is None or owner_alive(str(row[0])):
        return False  # held by a live collect (a row gone meanwhile: try again later)
    # Its holder was a process of this host that is gone: its lease need not run out.
    return bool(
        conn.execute(
            "UPDATE collect_claims SET owner = ?, claim_until = ? WHERE photo_id = ? AND owner = ?",
            (owner, now + lease, photo_id, row[0]),
        ).rowcount
    )


def renew_result_claims(conn: Conn, owner: str, now: float, lease: float) -> None:
    conn.execute("UPDATE collect_claims SET claim_until = ? WHERE owner = ?", (now + lease, owner))


def release_result_claims(conn: Conn, owner: str) -> None:
    conn.execute("DELETE FROM collect_claims WHERE owner = ?", (owner,))


def record_delivered(
    conn: Conn,
    files: Sequence[tuple[str, str]],
    written_at: str,
    made_from: Mapping[str, str] | None = None,
) -> None:
    """Remember the content of each file deliver writes: (sha256, where it was first written),
    and what it was made from (``made_from``: sha256 -> deliver's key of its sources and
    profile), so a re-delivery copies it instead of encoding the same photo again."""
    for sha256, path in files:
        source = (made_from or {}).get(sha256, "")
        conn.execute(
            "INSERT INTO delivered_files (sha256, path, written_at, made_from) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET made_from = "
            "excluded.made_from WHERE excluded.made_from != ''",
            (sha256, stored(path), written_at, source),
        )


def delivered(conn: Conn, hashes: Sequence[str]) -> set[str]:
    """Which of these contents deliver wrote."""
    rows = conn.execute(
        "SELECT sha256 FROM delivered_files WHERE sha256 IN (SELECT value FROM json_each(?))",
        (json.dumps(list(hashes)),),
    ).fetchall()
    return {str(r[0]) for r in rows}


def delivered_made_from(conn: Conn, hashes: Sequence[str]) -> dict[str, str]:
    """What each of these contents deliver wrote was made from (those recorded with it)."""
    rows = conn.execute(
        "SELECT sha256, made_from FROM delivered_files WHERE made_from != '' "
        "AND sha256 IN (SELECT value FROM json_each(?))",
        (json.dumps(list(hashes)),),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def photo_folders(conn: Conn) -> list[tuple[str, str, str]]:
    """(manifest, folder name, directory) of every photo the ledger holds: where photos are.

    ``rtrim(path, <path without its slashes>)`` strips the file name, in SQLite and PostgreSQL.
    """
    rows = conn.execute(
        "SELECT DISTINCT manifest, folder, rtrim(path, replace(path, '/', '')) FROM photos"
    ).fetchall()
    return [(str(m), str(f), str(d)) for m, f, d in rows]
