"""``open_ledger``: the one place that picks a store for a ledger's location."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.ledger.protocol import Ledger

__all__ = ["is_url", "open_ledger"]


def is_url(location: object) -> bool:
    """A PostgreSQL ledger's location (``postgresql://...`` or ``postgres://...``)."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_ledger(path: Path | str, *, init: bool = False) -> Ledger:
    """Open (creating and migrating if needed) the ledger at ``path``: a SQLite file, or a
    PostgreSQL database named by a ``postgresql://`` URL (pipeline/ledger/postgres.py).

    A SQLite ledger is created only where no file exists: an empty or foreign file there is
    refused (NotALedger), unless ``init`` (`aihd ledger init`) and the file is empty."""
    if is_url(path):
        try:
            import psycopg  # noqa: F401  (an extra: only the PostgreSQL store needs it)
        except ImportError:
            raise UsageError(
                "a postgresql:// ledger needs the PostgreSQL driver: "
                "pip install 'aihd[postgres]' (or pipx inject aihd 'psycopg[binary]')"
            ) from None
        from pipeline.ledger.postgres import PostgresLedger

        return PostgresLedger(str(path))  # an empty database is how a new one starts
    from pipeline.ledger.sqlite import SqliteLedger

    return SqliteLedger(Path(path), init=init)
