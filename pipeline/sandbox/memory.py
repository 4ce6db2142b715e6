"""The local emulator's memory between processes: its catalog ids, orders and uploaded photos
(v1's here; v3's records through ``save_record``, see v3_memory.py).

``aihd run --sandbox`` starts an emulator in its own process; ``aihd collect --sandbox`` (or
``run --sandbox --collect`` the next night) starts another. The real API remembers its orders,
so this one must too: with ``SandboxConfig.state_path`` each order and charge is written, as it
happens, to a small SQLite file (one transaction each: on disk whole or not at all, and safe for
two emulators of one account at once), and the uploaded photos beside it, each written to a
temporary file and renamed. Times are kept as Unix time and turned back into this process's
monotonic clock when read.
"""

from __future__ import annotations

__all__ = ["SandboxMemory", "StoredOrder"]

import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS catalog (kind TEXT NOT NULL, name TEXT NOT NULL, "
    "id TEXT NOT NULL, PRIMARY KEY (kind, name))",
    "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
    "created_at TEXT NOT NULL, before_image_id TEXT NOT NULL, space TEXT NOT NULL, "
    "image_id TEXT NOT NULL, charged_wall REAL, generated_ids TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results (generated_id TEXT PRIMARY KEY, order_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS orders_charged ON orders(charged_wall)",
    # The window's places v3 took (a process, or an order where the reading counts orders);
    # v1's are its orders' charged_wall.
    "CREATE TABLE IF NOT EXISTS window_places (taken_wall REAL NOT NULL)",
    # v3's records (v3_memory.py), each a JSON object: projects, orders, processes, results.
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id TEXT NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (kind, id))",
)


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as remembered; ``charged_at`` on this process's monotonic clock."""

    id: str
    sha256: str
    photo: Path
    created_at: str
    before_image_id: str
    space: str
    image_id: str
    charged_at: float | None
    generated_ids: tuple[str, ...]


class SandboxMemory:
    """One account's emulator state: ``<folder>/orders.sqlite`` and ``<folder>/photos/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.photos = folder / "photos"
        self.photos.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            folder / "orders.sqlite", timeout=10, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ids(self, kind: str, wanted: Mapping[str, str]) -> dict[str, str]:
        """The ids this account's emulator gave these names before; ``wanted`` (fresh ones)
        for names new to it. Stable across processes, as the real API's ids are."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO catalog (kind, name, id) VALUES (?, ?, ?)",
                    [(kind, name, id_) for name, id_ in wanted.items()],
                )
                rows = self._conn.execute(
                    "SELECT name, id FROM catalog WHERE kind = ?", (kind,)
                ).fetchall()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return {name: id_ for name, id_ in rows if name in wanted}

    def keep_photo(self, sha256: str, data: bytes | Path) -> Path:
        """The photo's file here, written once (temporary file, then rename)."""
        stored = self.photos / sha256
        if not stored.exists():
            fd, temp = tempfile.mkstemp(dir=self.photos, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(data, bytes):
                        out.write(data)
                    else:
                        with data.open("rb") as source:
                            while chunk := source.read(1 << 20):
                                out.write(chunk)
                os.replace(temp, stored)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return stored

    def save_order(self, order: StoredOrder) -> None:
        """Write the order as it stands now (an upload, or a charge), in one transaction."""
        charged_wall = None
        if order.charged_at is not None:
            charged_wall = time.time() - (time.monotonic() - order.charged_at)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO orders (id, sha256, created_at, before_image_id, space, "
                    "image_id, charged_wall, generated_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET space = excluded.space, "
                    "image_id = excluded.image_id, charged_wall = excluded.charged_wall, "
                    "generated_ids = excluded.generated_ids",
                    (
                        order.id,
                        order.sha256,
                        order.created_at,
                        order.before_image_id,
                        order.space,
                        order.image_id,
                        charged_wall,
                        json.dumps(list(order.generated_ids)),
                    ),
                )
                self._conn.executemany(
                    "INSERT OR IGNORE INTO results (generated_id, order_id) VALUES (?, ?)",
                    [(g, order.id) for g in order.generated_ids],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def order(self, order_id: str) -> StoredOrder | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, sha256, created_at, before_image_id, space, image_id, charged_wall, "
                "generated_ids FROM orders WHERE id = ?",
                (order_id,),
            ).fetchone()
        if row is None:
            return None
        charged_at = None
        if row[6] is not None:
            charged_at = time.monotonic() - (time.time() - float(row[6]))
        return StoredOrder(
            row[0],
            row[1],
            self.photos / row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            charged_at,
            tuple(json.loads(row[7])),
        )

    def order_of_result(self, generated_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT order_id FROM results WHERE generated_id = ?", (generated_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def save_record(self, kind: str, record_id: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO records (kind, id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                (kind, record_id, json.dumps(body)),
            )

    def record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def records(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT body FROM records WHERE kind = ? ORDER BY rowid", (kind,)
            ).fetchall()
        return [dict(json.loads(body)) for (body,) in rows]

    def take_window_place(self, taken_at: float) -> None:
        """A place v3 took in the window (``taken_at`` on this process's monotonic clock)."""
        wall = time.time() - (time.monotonic() - taken_at)
        with self._lock:
            self._conn.execute("INSERT INTO window_places (taken_wall) VALUES (?)", (wall,))

    def window_places_within(self, seconds: float) -> list[float]:
        """This account's places in the window of the last ``seconds`` (v1's charges, v3's
        processes or orders), on this process's monotonic clock: the order window carries
        over from one emulator to the next, as the API's does."""
        now_wall, now = time.time(), time.monotonic()
        since = now_wall - seconds
        with self._lock:
            rows = self._conn.execute(
                "SELECT charged_wall FROM orders WHERE charged_wall >= ? UNION ALL "
                "SELECT taken_wall FROM window_places WHERE taken_wall >= ? ORDER BY 1",
                (since, since),
            ).fetchall()
        return [now - (now_wall - float(wall)) for (wall,) in rows]
