"""The PostgreSQL ledger's schema, as an ordered list of migrations; ``aihd_schema`` holds its
version.

The same tables and columns as the SQLite ledger (migrations.py), so rows, states and the
import of a SQLite ledger mean the same; two columns more on ``order_posts``: ``intent_at`` and
``answer_at``, taken from the DATABASE's clock (``clock_timestamp()``), on which the account's
order window is counted across machines whatever their own clocks say. Each migration runs in
one transaction with the bump of the version, under an advisory lock, so two machines starting
at once migrate once. Append new migrations; never edit old ones.
"""

from __future__ import annotations

__all__ = [
    "ADVISORY_LOCK",
    "LOCK_FIND",
    "LOCK_MIGRATE",
    "LOCK_RUN",
    "LOCK_WINDOW",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "migrate",
]

from collections.abc import Callable

import psycopg

from pipeline.errors import LedgerError, NotALedger
from pipeline.ledger.migrations import (
    COLLECT_CLAIMS_OWNER,
    DELIVERED_FILES_TABLE,
    DELIVERED_MADE_FROM,
    IGNORED_CONTENT_TABLE,
    IGNORED_TABLE,
    ORDER_POSTS_PHOTO,
    PHOTOS_CLAIMS,
    PHOTOS_CURRENT_PATH,
    PHOTOS_IDENTITY,
    POSTS_ACCOUNT,
    REVIEWS_REASON,
    SEED_CHOICES,
    SEED_IGNORED,
    TITLES_TABLE,
    UNKNOWN_FROM_FAILED,
    UNKNOWN_FROM_TRUSTED_5XX,
    V3_PROJECTS_TABLE,
)
from pipeline.ledger.serving import create_tables

# Transaction-scoped advisory lock keys (pg_advisory_xact_lock): 'aihd' then a purpose.
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(%s)"  # with one of these keys:
LOCK_MIGRATE = 0x61696864_0001
LOCK_FIND = 0x61696864_0002  # record_found and friends choose ids as max(id) + 1
LOCK_WINDOW = 0x61696864_0003  # the account's order window (one account per database)
LOCK_RUN = 0x61696864_0004  # the run lock (a session-level lock; collect claims instead)


def _v1_initial(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Photos, order POSTs, runs and imports, as the SQLite ledger's schema version 3."""
    conn.execute(
        """
        CREATE TABLE photos (
            id           BIGINT  PRIMARY KEY,
            path         TEXT    NOT NULL,
            folder       TEXT    NOT NULL,
            sha256       TEXT    NOT NULL,
            size         BIGINT  NOT NULL,
            mtime_ns     BIGINT  NOT NULL,
            service      TEXT    NOT NULL,
            space        TEXT    NOT NULL,
            enhancements TEXT    NOT NULL,
            identity     TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            current      INTEGER NOT NULL DEFAULT 1,
            order_id     TEXT,
            image_id     TEXT,
            eta          BIGINT,
            submitted_at TEXT,
            result_urls  TEXT    NOT NULL DEFAULT '[]',
            output_paths TEXT    NOT NULL DEFAULT '[]',
            attempts     INTEGER NOT NULL DEFAULT 0,
            error        TEXT,
            retryable    INTEGER NOT NULL DEFAULT 0,
            failed_from  TEXT,
            duplicate_of BIGINT REFERENCES photos(id) DEFERRABLE INITIALLY DEFERRED,
            created_at   TEXT    NOT NULL,
            updated_at   TEXT    NOT NULL,
            charged      INTEGER NOT NULL DEFAULT 0,
            manifest     TEXT    NOT NULL DEFAULT '',
            claimed_by   TEXT,
            claim_until  DOUBLE PRECISION,               -- Unix time on the database's clock
            UNIQUE (path, identity)
        )
        """
    )
    conn.execute(PHOTOS_CURRENT_PATH)
    conn.execute(PHOTOS_IDENTITY)
    conn.execute(PHOTOS_CLAIMS)
    # The open photos of a folder in order: what a claim batch takes (postgres_base.claim).
    conn.execute(
        "CREATE INDEX photos_open ON photos(folder, id) "
        "WHERE current = 1 AND state IN ('pending', 'uploaded', 'submitting')"
    )
    conn.execute(
        """
        CREATE TABLE order_posts (
            id              BIGSERIAL PRIMARY KEY,
            photo_id        BIGINT NOT NULL REFERENCES photos(id),
            order_id        TEXT   NOT NULL,
            boot            TEXT   NOT NULL,
            intent_clock    DOUBLE PRECISION NOT NULL,
            intent_wall     DOUBLE PRECISION NOT NULL,
            answer_clock    DOUBLE PRECISION,
            answer_wall     DOUBLE PRECISION,
            outcome         TEXT,
            key_fingerprint TEXT NOT NULL DEFAULT '',
            intent_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            answer_at       TIMESTAMPTZ
        )
        """
    )
    conn.execute(ORDER_POSTS_PHOTO)
    conn.execute("CREATE INDEX order_posts_intent_at ON order_posts(intent_at)")
    conn.execute(
        """
        CREATE TABLE runs (
            id         BIGSERIAL PRIMARY KEY,
            command    TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at   TEXT,
            outcome    TEXT,
            summary    TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute(
        "CREATE TABLE imports (path TEXT PRIMARY KEY, imported_at TEXT NOT NULL, "
        "photos INTEGER NOT NULL)"
    )
    conn.execute("CREATE TABLE run_lock (only_one INTEGER PRIMARY KEY, note TEXT NOT NULL)")


def _v2_reviews_ignored_titles(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's migrations 4 and 5: review decisions, ignored paths, catalog spellings."""
    conn.execute(
        "CREATE TABLE reviews (photo_id BIGINT PRIMARY KEY REFERENCES photos(id), "
        "decision TEXT NOT NULL, decided_at TEXT NOT NULL, source TEXT)"
    )
    conn.execute(IGNORED_TABLE)
    conn.execute(TITLES_TABLE)


def _v3_v3_projects(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's migration 6: the v3 API's listing projects, one per account and address."""
    conn.execute(V3_PROJECTS_TABLE)


def _catalog_choices(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's: each catalog entry a photo's identity names, with every spelling seen."""
    conn.execute(
        "CREATE TABLE catalog_choices (kind TEXT NOT NULL, scope TEXT NOT NULL, "
        "key TEXT NOT NULL, entry_id TEXT, name TEXT, title TEXT, seen_at TEXT NOT NULL, "
        "PRIMARY KEY (kind, scope, key))"
    )
    for sql in SEED_CHOICES:
        conn.execute(sql)


def _ignored_by_content(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's: `aihd ignore` by content, paths for files that cannot be read."""
    conn.execute(IGNORED_CONTENT_TABLE)
    conn.execute(SEED_IGNORED)


def _window_per_account(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's: each order POST's account, so each account has its own window."""
    conn.execute(POSTS_ACCOUNT)


def _collect_claims(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's _collect_claims: collect's claims on a charged photo's results."""
    conn.execute(
        "CREATE TABLE collect_claims (photo_id BIGINT PRIMARY KEY REFERENCES photos(id), "
        "owner TEXT NOT NULL, claim_until DOUBLE PRECISION NOT NULL)"
    )
    conn.execute(COLLECT_CLAIMS_OWNER)


def _delivered_files(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's _delivered_files: the content of every file `aihd deliver` wrote."""
    conn.execute(DELIVERED_FILES_TABLE)


def _review_reasons(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's _review_reasons: why a person rejected a photo, beside the decision."""
    conn.execute(REVIEWS_REASON)


def _delivered_files_made_from(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's _delivered_files_made_from: what each delivered file was made from."""
    conn.execute(DELIVERED_MADE_FROM)


def _unknown_state_and_claim_fences(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's: the state ``unknown``, claim fencing tokens, each order POST's
    time allowed to leave; photos an older aihd failed that may have been charged: unknown."""
    conn.execute("ALTER TABLE photos ADD COLUMN claim_fence BIGINT NOT NULL DEFAULT 0")
    conn.execute(
        "ALTER TABLE order_posts ADD COLUMN send_within DOUBLE PRECISION NOT NULL DEFAULT 0"
    )
    conn.execute(UNKNOWN_FROM_FAILED)
    conn.execute(UNKNOWN_FROM_TRUSTED_5XX)  # no parameters: "%" is sent as it is


def _serve_upscales(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As SQLite's: upscale wishes and upscales, photos by order id (serving.py)."""
    create_tables(conn, big_ids=True)


MIGRATIONS: list[Callable[[psycopg.Connection[tuple[object, ...]]], None]] = [
    _v1_initial,
    _v2_reviews_ignored_titles,
    _v3_v3_projects,
    _catalog_choices,
    _ignored_by_content,
    _window_per_account,
    _collect_claims,
    _delivered_files,
    _review_reasons,
    _delivered_files_made_from,
    _unknown_state_and_claim_fences,
    _serve_upscales,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection[tuple[object, ...]], where: str) -> None:
    """Bring the database to SCHEMA_VERSION; refuse one that is another tool's, or newer."""
    while True:
        with conn.transaction():
            conn.execute(ADVISORY_LOCK, (LOCK_MIGRATE,))
            version = _version(conn, where)
            if version >= SCHEMA_VERSION:
                break
            if version == 0:
                conn.execute("CREATE TABLE aihd_schema (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO aihd_schema VALUES (0)")
            MIGRATIONS[version](conn)
            conn.execute("UPDATE aihd_schema SET version = %s", (version + 1,))
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"ledger {where} has schema version {version}, newer than this aihd knows "
            f"({SCHEMA_VERSION}); upgrade aihd, or use another database"
        )


def _version(conn: psycopg.Connection[tuple[object, ...]], where: str) -> int:
    tables = {
        str(r[0])
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    if "aihd_schema" in tables:
        row = conn.execute("SELECT version FROM aihd_schema").fetchone()
        return int(str(row[0])) if row else 0
    if tables:
        raise NotALedger(
            f"cannot open ledger {where}: the database holds tables of another tool, not an "
            "aihd ledger; nothing was spent: name an empty database (createdb aihd) for the ledger"
        )
    return 0
