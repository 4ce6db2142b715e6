"""The ledger: what has been found, uploaded, paid for and downloaded, safe across crashes.

It belongs to the account (see pipeline/manifest/accounts.py), and is shared by every manifest and
every run of it. The package shows its parts:

    records.py        the records: states, a photo's identity and row, order POST times, runs
    protocol.py       the ``Ledger`` interface the runner codes against
    stores.py         ``open_ledger``: the factory above the stores (the seam for PostgreSQL)
    sqlite.py         the SQLite store: one file, WAL, synchronous=FULL, claims, the run lock
    sqlite_file.py    a new SQLite ledger made only where no file exists; others must be ours
    sqlite_rows.py    how rows are encoded in SQLite
    sqlite_found.py   finding photos: identities, duplicates, copies taking an orphan's place
    sqlite_window.py  the order window's store: each order POST's intent and answer
    window_log.py     the account's window as a handle counts it: the POSTs it has read, by id
    sqlite_import.py  taking in another (older, per-manifest) ledger
    after_order.py    one SQL for both stores: collect's claims, the files deliver wrote
    serving.py        what `aihd serve` adds: photos by order id, upscale wishes and upscales
    migrations.py     the schema, as an ordered list of migrations
    identity_sql.py   SQL both stores run: catalog entries of identities, ignored content
    postgres.py       the PostgreSQL store, one ledger for several machines (postgresql:// URL);
                      its parts: postgres_base/_claims/_orders/_sql/_schema.py
"""

from __future__ import annotations

from pipeline.ledger.protocol import Ledger
from pipeline.ledger.records import (
    UNSETTLED,
    ChoiceEntry,
    Counterpart,
    Decision,
    FoundPhoto,
    KnownFile,
    LastPost,
    PhotoOptions,
    PhotoRow,
    PostTimes,
    Review,
    RunRecord,
    State,
    WindowFull,
    WindowRule,
)
from pipeline.ledger.serving import UpscaleRow
from pipeline.ledger.stores import open_ledger

__all__ = [
    "UNSETTLED",
    "ChoiceEntry",
    "Counterpart",
    "Decision",
    "FoundPhoto",
    "KnownFile",
    "LastPost",
    "Ledger",
    "PhotoOptions",
    "PhotoRow",
    "PostTimes",
    "Review",
    "RunRecord",
    "State",
    "UpscaleRow",
    "WindowFull",
    "WindowRule",
    "open_ledger",
]
