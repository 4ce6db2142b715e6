"""Finding photos in SQLite: one row per path and identity, duplicates of an identity already
held, and copies that take the place of an unpaid original that is gone."""

from __future__ import annotations

__all__ = ["HELD", "ORPHANABLE", "adopt", "record_found", "unpaid_originals"]

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from pipeline.filenames import shell_join, unstored
from pipeline.filenames import stored as store
from pipeline.ledger import statements as S
from pipeline.ledger.records import UNSETTLED, FoundPhoto, PhotoRow, State
from pipeline.ledger.sqlite_rows import COLUMNS, INSERT, encode, new_row, row_of

# An original in these states was never charged and holds no open intent: a copy may take its
# place when its file is gone.
ORPHANABLE = ("pending", "uploaded", "failed")
# A photo held because the same photo was paid through the other API version, and the two
# choices cannot be told apart for sure: never an original, never retried, until reorder.
HELD = "state = 'failed' AND duplicate_of IS NOT NULL"


def record_found(conn: sqlite3.Connection, found: Sequence[FoundPhoto], now: str) -> list[PhotoRow]:
    """Find or add a row per photo in one transaction: a few queries, whatever the batch size.

    Paths are the files' own names here; they are bound and read in the ledger's form."""
    paths = json.dumps(list({store(f.path) for f in found}))
    stored: dict[tuple[str, str], Sequence[Any]] = {}  # decoded only when a photo matches
    current_of: dict[str, int] = {}  # path -> id of its current row before this call
    for r in conn.execute(
        f"SELECT {COLUMNS}, current FROM photos WHERE path IN (SELECT value FROM json_each(?))",
        (paths,),
    ):
        path = unstored(r[1])
        stored[(path, r[9])] = r
        if r[23]:
            current_of[path] = r[0]
    identities = [f.options.identity(f.sha256) for f in found]
    originals: dict[str, int] = {}
    crossed: dict[str, tuple[int, str]] = {}
    next_id = 0
    missing = {i for f, i in zip(found, identities, strict=True) if (f.path, i) not in stored}
    if missing:
        # Any earlier row with this identity was (or will be) the one paid order for it.
        originals = dict(
            conn.execute(
                "SELECT identity, min(id) FROM photos WHERE state != 'duplicate' "
                f"AND NOT ({HELD}) AND identity IN (SELECT value FROM json_each(?)) "
                "GROUP BY identity",
                (json.dumps(list(missing)),),
            ).fetchall()
        )
        crossed = _paid_through_other_version(conn, found, identities, missing - set(originals))
        # Ids are chosen here (the write lock is held) so in-batch copies can point at them.
        (next_id,) = conn.execute(S.NEXT_PHOTO_ID).fetchone()
    known: dict[tuple[str, str], PhotoRow] = {}
    inserts: dict[int, PhotoRow] = {}
    refreshed: dict[int, PhotoRow] = {}
    final_current: dict[str, int] = {}
    result: list[PhotoRow] = []
    for photo, identity in zip(found, identities, strict=True):
        key = (photo.path, identity)
        row = known.get(key)
        if row is None and (raw := stored.get(key)) is not None:
            row = known[key] = row_of(raw)
        if row is None and identity not in originals and identity in crossed:
            # Paid through the other API version: a copy of that order, never paid again;
            # or held (failed, not retried) when the two choices cannot be told apart.
            paid_id, held = crossed[identity]
            row = new_row(next_id, photo, identity, now, paid_id)
            if held:
                row = row._replace(state=State.FAILED, error=_held_reason(held, photo))
            next_id += 1
            inserts[row.id] = known[key] = row
        elif row is None:
            row = new_row(next_id, photo, identity, now, originals.get(identity))
            next_id += 1
            originals.setdefault(identity, row.id)
            inserts[row.id] = known[key] = row
        elif (row.folder, row.size, row.mtime_ns) != (photo.folder, photo.size, photo.mtime_ns):
            # Same content and options, touched or moved between folders: keep the hash cache true.
            row = row._replace(folder=photo.folder, size=photo.size, mtime_ns=photo.mtime_ns)
            (inserts if row.id in inserts else refreshed)[row.id] = known[key] = row
        final_current[photo.path] = row.id
        result.append(row)
    conn.executemany(
        "UPDATE photos SET current = 0 WHERE id = ?",
        [(cid,) for path, cid in current_of.items() if final_current.get(path, cid) != cid],
    )
    conn.executemany(
        "UPDATE photos SET current = 1 WHERE id = ?",
        [(i,) for p, i in final_current.items() if i not in inserts and current_of.get(p) != i],
    )
    conn.executemany(
        "UPDATE photos SET folder = ?, size = ?, mtime_ns = ? WHERE id = ?",
        [(store(r.folder), r.size, r.mtime_ns, r.id) for r in refreshed.values()],
    )
    manifests = {f.path: f.manifest for f in found}
    conn.executemany(
        INSERT,
        [
            encode(r, final_current[r.path] == r.id, now, manifests[r.path])
            for r in inserts.values()
        ],
    )
    return result


def _paid_through_other_version(
    conn: sqlite3.Connection, found: Sequence[FoundPhoto], identities: Sequence[str], new: set[str]
) -> dict[str, tuple[int, str]]:
    """For new identities with counterparts (the same product through the other API version):
    identity -> (the charged row of a counterpart, why it is held, or '' when it is the same
    choice). A same choice wins over a held one."""
    wanted: dict[str, list[tuple[str, str]]] = {}  # identity -> [(counterpart identity, held)]
    for photo, identity in zip(found, identities, strict=True):
        if identity in new and photo.counterparts and identity not in wanted:
            wanted[identity] = sorted(
                ((c.options.identity(photo.sha256), c.held) for c in photo.counterparts),
                key=lambda pair: pair[1] != "",
            )
    if not wanted:
        return {}
    # Charged, or maybe: an order POST whose outcome is not settled yet may have charged.
    paid = {
        identity: (photo_id, bool(charged))
        for identity, photo_id, charged in conn.execute(
            "SELECT identity, min(id), max(charged) FROM photos "
            "WHERE (charged = 1 OR state IN ('submitting', 'unknown') "
            "OR failed_from IN ('submitting', 'unknown')) "
            "AND identity IN (SELECT value FROM json_each(?)) GROUP BY identity",
            (json.dumps([other for pairs in wanted.values() for other, _ in pairs]),),
        ).fetchall()
    }
    crossed: dict[str, tuple[int, str]] = {}
    for identity, pairs in wanted.items():
        for other, held in pairs:
            if other in paid:
                photo_id, charged = paid[other]
                crossed[identity] = (photo_id, held if charged else UNSETTLED)
                break
    return crossed


def _held_reason(held: str, photo: FoundPhoto) -> str:
    again = shell_join(["aihd", "reorder", photo.manifest or "?", photo.path, "--yes"])
    return f"held: {held}; not ordered, nothing spent: `{again}` orders it, at a cost"


def unpaid_originals(
    conn: sqlite3.Connection, copy_ids: Sequence[int]
) -> list[tuple[int, int, str, bool]]:
    """(copy id, original id, original's path, whether the original may stand) for copies
    whose original was never charged and holds no open intent."""
    rows = conn.execute(
        "SELECT c.id, o.id, o.path, o.current AND o.state != 'failed' FROM photos c "
        "JOIN photos o ON o.id = c.duplicate_of "
        "WHERE c.id IN (SELECT value FROM json_each(?)) AND c.state = 'duplicate' "
        f"AND o.charged = 0 AND o.state IN {ORPHANABLE}",
        (json.dumps(list(copy_ids)),),
    ).fetchall()
    return [(c, o, unstored(path), bool(stands)) for c, o, path, stands in rows]


def adopt(conn: sqlite3.Connection, copy_id: int, original_id: int, gone: bool, now: str) -> None:
    """The copy takes the unpaid original's place (and its upload); the original becomes a
    copy of it, no longer current if its file is gone."""
    state, order_id = conn.execute(
        "SELECT state, order_id FROM photos WHERE id = ?", (original_id,)
    ).fetchone()
    keeps_upload = state == "uploaded" and order_id is not None
    conn.execute(
        "UPDATE photos SET state = ?, order_id = ?, duplicate_of = NULL, error = NULL, "
        "retryable = 0, failed_from = NULL, updated_at = ? WHERE id = ?",
        ("uploaded" if keeps_upload else "pending", order_id if keeps_upload else None, now,
         copy_id),
    )  # fmt: skip
    conn.execute(
        "UPDATE photos SET state = 'duplicate', duplicate_of = ?, order_id = NULL, "
        "current = CASE WHEN ? = 1 THEN 0 ELSE current END, updated_at = ? WHERE id = ?",
        (copy_id, int(gone), now, original_id),
    )
    conn.execute(
        "UPDATE photos SET duplicate_of = ? WHERE duplicate_of = ? AND id != ?",
        (copy_id, original_id, copy_id),
    )
