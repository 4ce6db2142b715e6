"""The SQL of a photo's identity that both stores run as it is (PostgreSQL through
``postgres_sql.SqliteStyle``): catalog entries with their spellings, and content `aihd ignore`
leaves out."""

from __future__ import annotations

__all__ = [
    "IGNORE_CONTENT",
    "IMPORT_CHOICE",
    "IMPORT_IGNORED_CONTENT",
    "SELECT_CHOICES",
    "SELECT_IGNORED_CONTENT",
    "UPSERT_CHOICE",
    "choice_params",
    "choice_rows",
]

from collections.abc import Sequence
from typing import Any

from pipeline.ledger.records import ChoiceEntry

SELECT_CHOICES = (
    "SELECT kind, scope, key, entry_id, name, title FROM catalog_choices ORDER BY kind, scope, key"
)
# The latest spellings win; one not given (None) keeps the one known.
UPSERT_CHOICE = (
    "INSERT INTO catalog_choices (kind, scope, key, entry_id, name, title, seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, scope, key) DO UPDATE SET "
    "entry_id = coalesce(excluded.entry_id, catalog_choices.entry_id), "
    "name = coalesce(excluded.name, catalog_choices.name), "
    "title = coalesce(excluded.title, catalog_choices.title), seen_at = excluded.seen_at"
)
IGNORE_CONTENT = (
    "INSERT INTO ignored_content (sha256, path, ignored_at, reason) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (sha256) DO NOTHING"
)
SELECT_IGNORED_CONTENT = "SELECT sha256 FROM ignored_content"
# Imported ledgers bring their entries and ignored content; what this ledger has stays.
IMPORT_CHOICE = (
    "INSERT INTO catalog_choices (kind, scope, key, entry_id, name, title, seen_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, scope, key) DO NOTHING"
)
IMPORT_IGNORED_CONTENT = IGNORE_CONTENT


def choice_rows(rows: Sequence[Sequence[Any]]) -> list[ChoiceEntry]:
    return [ChoiceEntry(*r) for r in rows]


def choice_params(entries: Sequence[ChoiceEntry], now: str) -> list[tuple[object, ...]]:
    return [(e.kind, e.scope, e.key, e.entry_id, e.name, e.title, now) for e in entries]
