"""Copy another aihd SQLite ledger (a per-manifest one of an older release) into this one.

Nothing is lost: every photo row, order POST and run is copied, with new ids. A photo already
in this ledger (same path and identity) keeps its row; if only the imported copy was charged,
the charge and its order are taken over, so the photo is never paid again. An imported photo
whose identity this ledger already holds uncharged elsewhere becomes a duplicate of it.
"""

from __future__ import annotations

__all__ = ["import_rows"]

import sqlite3
from typing import Any

from pipeline.ledger import identity_sql as idsql
from pipeline.ledger import statements as S

_PHOTO_COLUMNS = (
    "path, folder, sha256, size, mtime_ns, service, space, enhancements, identity, state, "
    "current, order_id, image_id, eta, submitted_at, result_urls, output_paths, attempts, error, "
    "retryable, failed_from, duplicate_of, created_at, updated_at, charged, manifest"
)
_POST_COLUMNS = (
    "order_id, boot, intent_clock, intent_wall, answer_clock, answer_wall, outcome, key_fingerprint"
)
_UNPAID_STATES = ("pending", "uploaded", "failed", "duplicate")  # submitting may be charged
_MAY_BE_CHARGED = ("submitting", "unknown")  # an order POST not settled either way
_ORPHAN_STATES = ("pending", "uploaded", "failed")  # ours, no order of its own in flight
_ORDER_FIELDS = (
    "state, order_id, image_id, eta, submitted_at, result_urls, output_paths, charged, error, "
    "retryable, failed_from, duplicate_of"
)


def import_rows(conn: sqlite3.Connection, source: sqlite3.Connection) -> int:
    """Copy ``source``'s rows into ``conn`` (a write transaction is open); returns photos."""
    names = _PHOTO_COLUMNS.split(", ")
    index = {name: n for n, name in enumerate(names)}
    new_id: dict[int, int] = {}
    inserted: list[tuple[int, list[Any]]] = []
    (next_id,) = conn.execute(S.NEXT_PHOTO_ID).fetchone()
    for row in source.execute(f"SELECT id, {_PHOTO_COLUMNS} FROM photos ORDER BY id"):
        old_id, values = row[0], list(row[1:])
        path, identity = values[index["path"]], values[index["identity"]]
        ours = conn.execute(
            "SELECT id, charged, state FROM photos WHERE path = ? AND identity = ?",
            (path, identity),
        ).fetchone()
        if ours is not None:
            new_id[old_id] = ours[0]
            if values[index["charged"]] and not ours[1]:
                _take_order(conn, ours[0], values, index)
            elif values[index["state"]] in _MAY_BE_CHARGED and ours[2] in _ORPHAN_STATES:
                # Its order may have been charged (the run that sent it is gone): ours holds
                # it as unknown, to be settled from the order's details, never ordered again.
                values[index["state"]] = "unknown"
                _take_order(conn, ours[0], values, index)
            continue
        if conn.execute("SELECT 1 FROM photos WHERE path = ? AND current = 1", (path,)).fetchone():
            values[index["current"]] = 0  # this ledger's row stands for the file now
        original = conn.execute(
            "SELECT min(id) FROM photos WHERE identity = ? AND state != 'duplicate'", (identity,)
        ).fetchone()[0]
        if (
            original is not None
            and not values[index["charged"]]
            and values[index["state"]] in _UNPAID_STATES
        ):
            values[index["state"]] = "duplicate"  # paid for (or to be paid) through the other
            values[index["duplicate_of"]] = original
            values[index["order_id"]] = None
        new_id[old_id] = next_id
        inserted.append((next_id, values))
        next_id += 1
    for photo_id, values in inserted:
        old_original = values[index["duplicate_of"]]
        if old_original is not None and values[index["state"]] == "duplicate":
            values[index["duplicate_of"]] = new_id.get(old_original, old_original)
        marks = ", ".join("?" * (len(names) + 1))
        conn.execute(
            f"INSERT INTO photos (id, {_PHOTO_COLUMNS}) VALUES ({marks})", (photo_id, *values)
        )
    for photo_id, *post in source.execute(f"SELECT photo_id, {_POST_COLUMNS} FROM order_posts"):
        conn.execute(
            f"INSERT INTO order_posts (photo_id, {_POST_COLUMNS}) "
            f"VALUES ({', '.join('?' * (len(post) + 1))})",
            (new_id.get(photo_id, photo_id), *post),
        )
    for run in source.execute("SELECT command, started_at, ended_at, outcome, summary FROM runs"):
        conn.execute(
            "INSERT INTO runs (command, started_at, ended_at, outcome, summary) "
            "VALUES (?, ?, ?, ?, ?)",
            run,
        )
    # The v3 API's projects: the photos' listings, so they are not made again (first one stays).
    for project in source.execute(
        "SELECT account, address, project_id, created_at FROM v3_projects"
    ):
        conn.execute(S.SAVE_V3_PROJECT, project)
    # The catalog entries its identities name (with their spellings), and content ignored.
    for choice in source.execute(
        "SELECT kind, scope, key, entry_id, name, title, seen_at FROM catalog_choices"
    ):
        conn.execute(idsql.IMPORT_CHOICE, choice)
    for ignored in source.execute("SELECT sha256, path, ignored_at, reason FROM ignored_content"):
        conn.execute(idsql.IMPORT_IGNORED_CONTENT, ignored)
    return len(inserted)


def _take_order(
    conn: sqlite3.Connection, photo_id: int, values: list[Any], index: dict[str, int]
) -> None:
    """The imported row was charged (or may have been) and ours not: ours takes its order,
    never paid again."""
    fields = _ORDER_FIELDS.split(", ")
    taken = [values[index[f]] for f in fields]
    taken[fields.index("duplicate_of")] = None
    sets = ", ".join(f"{f} = ?" for f in fields)
    conn.execute(f"UPDATE photos SET {sets} WHERE id = ?", (*taken, photo_id))
