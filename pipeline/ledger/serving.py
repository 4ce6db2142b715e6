"""What ``aihd serve`` asks of the ledger beyond a run: the photo a webhook's order id names,
and upscales (v1 only, docs/api/AIHOMEDESIGN_API.md 2.7).

An upscale starts as a wish on a photo (``upscale: true`` on its folder, or ``aihd upscale``);
once the photo is completed, one row per generated image is written ``requesting`` BEFORE its
POST is sent (the intent): a row exists at most once per generated image, so no process or
machine sends a second POST for it. A refusal (a 4xx, 429, or no connection: nothing was sent
or charged) makes it ``failed`` and retryable; a lost answer leaves it ``requesting``: it may
have been sent, so it is never sent again by itself, and its webhook may still come. The
webhook makes it ``completed`` with the file aihd wrote.

The SQL is SQLite's; the PostgreSQL store runs it through ``postgres_sql.SqliteStyle``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from pipeline.filenames import shown, stored, unstored

__all__ = ["UpscaleRow", "create_tables"]

MAX_UPSCALE_ATTEMPTS = 5  # refusals of one upscale before it is left failed for good


class Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


class UpscaleRow(NamedTuple):
    """One upscale: of which photo and generated image (None while only wished), where it
    stands (wanted, requesting, requested, completed, failed), and its file."""

    photo_id: int
    generated_image_id: str | None
    state: str
    attempts: int
    output_path: str | None
    error: str | None
    retryable: bool


def create_tables(conn: Conn, *, big_ids: bool = False) -> None:
    """The wishes, the upscales, and an index to find a photo by its order id (a webhook)."""
    id_type = "BIGINT" if big_ids else "INTEGER"
    conn.execute(
        f"CREATE TABLE upscale_wishes (photo_id {id_type} PRIMARY KEY REFERENCES photos(id), "
        "wished_at TEXT NOT NULL, source TEXT)"
    )
    conn.execute(
        f"""
        CREATE TABLE upscales (
            generated_image_id TEXT PRIMARY KEY,
            photo_id     {id_type} NOT NULL REFERENCES photos(id),
            state        TEXT    NOT NULL,           -- requesting | requested | completed | failed
            attempts     INTEGER NOT NULL DEFAULT 0,
            retryable    INTEGER NOT NULL DEFAULT 0,
            output_path  TEXT,
            error        TEXT,
            requested_at TEXT,
            updated_at   TEXT    NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX upscales_photo ON upscales(photo_id)")
    conn.execute("CREATE INDEX photos_order ON photos(order_id)")


def scope_sql(folders: Sequence[str] | None) -> tuple[str, list[object]]:
    """SQL (both stores) keeping photos in these folders or below them; None: every photo."""
    if folders is None:
        return "TRUE", []
    if not folders:
        return "FALSE", []
    # One JSON list, not an OR per folder (SQLite's expression depth; see sqlite._scope);
    # each prefix in the ledger's form of paths (filenames.py).
    prefixes = sorted({stored(folder.rstrip("/") + "/") for folder in folders})
    clause = "EXISTS (SELECT 1 FROM json_each(?) WHERE substr(p.path, 1, length(value)) = value)"
    return clause, [json.dumps(prefixes)]


def photo_by_order(conn: Conn, columns: str, order_id: str) -> Any:
    """The raw row of the photo ordered as ``order_id`` (its current row first), or None."""
    return conn.execute(
        f"SELECT {columns} FROM photos WHERE order_id = ? ORDER BY current DESC, id DESC LIMIT 1",
        (order_id,),
    ).fetchone()


def wish(conn: Conn, photo_ids: Sequence[int], source: str, now: str) -> int:
    """Wish these photos upscaled (once each); returns how many wishes are new."""
    added = 0
    for photo_id in photo_ids:
        cur = conn.execute(
            "INSERT INTO upscale_wishes (photo_id, wished_at, source) SELECT id, ?, ? "
            "FROM photos WHERE id = ? AND NOT EXISTS "
            "(SELECT 1 FROM upscale_wishes WHERE photo_id = ?)",
            (now, source, photo_id, photo_id),
        )
        added += max(0, cur.rowcount)
    return added


def work(conn: Conn, scope: tuple[str, list[object]]) -> list[int]:
    """Completed photos wished upscaled with no upscale yet, or only retryable refusals."""
    clause, params = scope
    rows = conn.execute(
        "SELECT p.id FROM upscale_wishes w JOIN photos p ON p.id = w.photo_id "
        f"WHERE p.state = 'completed' AND p.current = 1 AND {clause} AND ("
        "NOT EXISTS (SELECT 1 FROM upscales u WHERE u.photo_id = p.id) OR EXISTS "
        "(SELECT 1 FROM upscales u WHERE u.photo_id = p.id AND u.state = 'failed' "
        "AND u.retryable = 1)) ORDER BY p.id",
        params,
    ).fetchall()
    return [int(r[0]) for r in rows]


def intents(conn: Conn, photo_id: int, generated_ids: Sequence[str], now: str) -> list[str]:
    """Write each upscale's intent; the generated images whose POST is now this caller's:
    new ones, and retryable refusals (no other row, in any state, is ever taken again)."""
    taken = []
    for generated_id in generated_ids:
        cur = conn.execute(
            "INSERT INTO upscales (generated_image_id, photo_id, state, attempts, requested_at, "
            "updated_at) VALUES (?, ?, 'requesting', 1, ?, ?) "
            "ON CONFLICT (generated_image_id) DO UPDATE SET state = 'requesting', "
            "attempts = upscales.attempts + 1, retryable = 0, error = NULL, "
            "requested_at = excluded.requested_at, updated_at = excluded.updated_at "
            "WHERE upscales.state = 'failed' AND upscales.retryable = 1 "
            "AND upscales.photo_id = excluded.photo_id",
            (generated_id, photo_id, now, now),
        )
        if cur.rowcount > 0:
            taken.append(generated_id)
    return taken


def answered(conn: Conn, generated_id: str, error: str | None, now: str) -> None:
    """The POST was answered: accepted (``error`` None), or refused (nothing was charged)."""
    if error is None:
        conn.execute(
            "UPDATE upscales SET state = 'requested', updated_at = ? "
            "WHERE generated_image_id = ? AND state = 'requesting'",
            (now, generated_id),
        )
        return
    conn.execute(
        "UPDATE upscales SET state = 'failed', error = ?, "
        "retryable = CASE WHEN attempts < ? THEN 1 ELSE 0 END, updated_at = ? "
        "WHERE generated_image_id = ? AND state = 'requesting'",
        (shown(error), MAX_UPSCALE_ATTEMPTS, now, generated_id),
    )


def finish(
    conn: Conn, generated_id: str, output_path: str | None, error: str | None, now: str
) -> bool:
    """The upscaled file is written (``output_path``), or failed for good (``error``); False
    when it was settled already (a duplicate webhook). The path in the ledger's form, the
    error as shown to people (filenames.py), as a photo's."""
    state = "completed" if error is None else "failed"
    path = None if output_path is None else stored(output_path)
    told = None if error is None else shown(error)
    cur = conn.execute(
        "UPDATE upscales SET state = ?, output_path = ?, error = ?, retryable = 0, "
        "updated_at = ? WHERE generated_image_id = ? AND state IN ('requesting', 'requested')",
        (state, path, told, now, generated_id),
    )
    return bool(cur.rowcount > 0)


_ROW = (
    "SELECT u.photo_id, u.generated_image_id, u.state, u.attempts, u.output_path, u.error, "
    "u.retryable FROM upscales u"
)


def one(conn: Conn, generated_id: str) -> UpscaleRow | None:
    found = conn.execute(f"{_ROW} WHERE u.generated_image_id = ?", (generated_id,)).fetchone()
    return None if found is None else _row(found)


def every(conn: Conn, scope: tuple[str, list[object]]) -> list[UpscaleRow]:
    """Every upscale of the photos in scope, and each wish with none yet as ``wanted``."""
    clause, params = scope
    rows = conn.execute(
        f"{_ROW} JOIN photos p ON p.id = u.photo_id WHERE {clause} "
        "UNION ALL SELECT w.photo_id, NULL, 'wanted', 0, NULL, NULL, 0 FROM upscale_wishes w "
        f"JOIN photos p ON p.id = w.photo_id WHERE {clause} AND NOT EXISTS "
        "(SELECT 1 FROM upscales u WHERE u.photo_id = w.photo_id) ORDER BY 1, 2",
        [*params, *params],
    ).fetchall()
    return [_row(r) for r in rows]


def _row(r: Sequence[Any]) -> UpscaleRow:
    path = None if r[4] is None else unstored(r[4])
    return UpscaleRow(int(r[0]), r[1], str(r[2]), int(r[3]), path, r[5], bool(r[6]))
