"""How a photo's row is stored in SQLite: its columns, and the encoding both ways.

A path (and a folder, a manifest) may name bytes that are not UTF-8: they are stored in the
ledger's form (``pipeline.filenames.stored``) and read back as the file's own name; an error
is stored as shown to people. PostgreSQL's store uses the same encoding.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "INSERT", "STATES", "encode", "new_row", "now_text", "row_of"]

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any

from pipeline.filenames import shown, stored, unstored
from pipeline.ledger.records import FoundPhoto, PhotoRow, State

COLUMNS = (
    "id, path, folder, sha256, size, mtime_ns, service, space, enhancements, identity, state, "
    "order_id, image_id, eta, submitted_at, result_urls, output_paths, attempts, error, "
    "retryable, duplicate_of, updated_at, charged"
)
INSERT = (
    f"INSERT INTO photos ({COLUMNS}, current, created_at, manifest) "
    f"VALUES ({', '.join('?' * (COLUMNS.count(',') + 4))})"
)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@lru_cache(maxsize=1024)
def _titles(text: str) -> tuple[str, ...]:
    # Cached: a ledger holds few distinct option sets, so rows share one tuple each.
    return tuple(json.loads(text))


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


@lru_cache(maxsize=1024)
def _titles_json(titles: tuple[str, ...]) -> str:
    return json.dumps(list(titles))


def _strings_json(strings: tuple[str, ...]) -> str:
    return json.dumps(list(strings)) if strings else "[]"


STATES = {s.value: s for s in State}  # a dict lookup is several times faster than State(text)


# tuple.__new__ on the fields in order: no Python frame, unlike the NamedTuple's own __new__
_make_row = partial(tuple.__new__, PhotoRow)


def row_of(r: Sequence[Any]) -> PhotoRow:
    # Built from slices of the row: a run builds several per photo (see PhotoRow); file names
    # as the ledger stores them (pipeline.filenames).
    return _make_row((
        r[0], unstored(r[1]), unstored(r[2]), *r[3:8], _titles(r[8]), r[9], STATES[r[10]],
        *r[11:15], _strings(r[15]), _strings(r[16]), r[17], r[18], bool(r[19]), r[20], r[21],
        bool(r[22]),
    ))  # fmt: skip


def encode(row: PhotoRow, current: bool, created_at: str, manifest: str = "") -> tuple[object, ...]:
    return (
        row.id, stored(row.path), stored(row.folder), row.sha256, row.size, row.mtime_ns,
        row.service, row.space, _titles_json(row.enhancements), row.identity, row.state.value,
        row.order_id, row.image_id, row.eta, row.submitted_at, _strings_json(row.result_urls),
        _strings_json(row.output_paths), row.attempts, error_text(row.error),
        int(row.retryable), row.duplicate_of, row.updated_at, int(row.charged), int(current),
        created_at, stored(manifest),
    )  # fmt: skip


def error_text(error: str | None) -> str | None:
    """An error as stored: as shown to people (a path in it with its bytes escaped)."""
    return None if error is None else shown(error)


def new_row(
    photo_id: int, found: FoundPhoto, identity: str, now: str, duplicate_of: int | None
) -> PhotoRow:
    state = State.PENDING if duplicate_of is None else State.DUPLICATE
    o = found.options
    return _make_row((
        photo_id, found.path, found.folder, found.sha256, found.size, found.mtime_ns, o.service,
        o.space, o.enhancements, identity, state, None, None, None, None, (), (), 0, None, False,
        duplicate_of, now, False,
    ))  # fmt: skip
