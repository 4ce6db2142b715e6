"""``open_ledger``: the one place that picks a store for a ledger's location."""

from __future__ import annotations

from pathlib import Path

from pipeline.ledger.sqlite import SqliteLedger

__all__ = ["open_ledger"]


def open_ledger(path: Path) -> SqliteLedger:
    """Open (creating and migrating if needed) the SQLite ledger at ``path``."""
    return SqliteLedger(Path(path))
