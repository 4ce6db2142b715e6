"""The ledger's schema, as an ordered list of migrations; ``PRAGMA user_version`` is its version.

Each migration runs in its own transaction together with the bump of ``user_version``, so a crash
mid-migration leaves the previous version intact. Append new migrations; never edit old ones.
"""

from __future__ import annotations

__all__ = [
    "APPLICATION_ID",
    "COLLECT_CLAIMS_OWNER",
    "DELIVERED_FILES_TABLE",
    "DELIVERED_MADE_FROM",
    "IGNORED_CONTENT_TABLE",
    "IGNORED_TABLE",
    "MIGRATIONS",
    "ORDER_POSTS_PHOTO",
    "PHOTOS_CLAIMS",
    "PHOTOS_CURRENT_PATH",
    "PHOTOS_IDENTITY",
    "POSTS_ACCOUNT",
    "REVIEWS_REASON",
    "SCHEMA_VERSION",
    "SEED_CHOICES",
    "SEED_IGNORED",
    "TITLES_TABLE",
    "UNKNOWN_FROM_FAILED",
    "UNKNOWN_FROM_TRUSTED_5XX",
    "V3_PROJECTS_TABLE",
    "empty_message",
    "migrate",
]

import sqlite3
from collections.abc import Callable

from pipeline.errors import LedgerError, NotALedger
from pipeline.filenames import shell_quoted
from pipeline.ledger.serving import create_tables

# 'aihd' in ASCII: marks the file as ours so another tool's SQLite file is refused, not altered.
APPLICATION_ID = 0x61696864


# Schema both stores make alike: postgres_schema.py runs these same statements.
PHOTOS_CURRENT_PATH = "CREATE UNIQUE INDEX photos_current_path ON photos(path) WHERE current = 1"
PHOTOS_IDENTITY = "CREATE INDEX photos_identity ON photos(identity)"
PHOTOS_CLAIMS = "CREATE INDEX photos_claims ON photos(claimed_by) WHERE claimed_by IS NOT NULL"
ORDER_POSTS_PHOTO = "CREATE INDEX order_posts_photo ON order_posts(photo_id, id)"
IGNORED_TABLE = (
    "CREATE TABLE ignored (path TEXT PRIMARY KEY, ignored_at TEXT NOT NULL, reason TEXT)"
)
TITLES_TABLE = "CREATE TABLE titles (casefolded TEXT PRIMARY KEY, title TEXT NOT NULL)"
V3_PROJECTS_TABLE = (
    "CREATE TABLE v3_projects (account TEXT NOT NULL, address TEXT NOT NULL, "
    "project_id TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (account, address))"
)
IGNORED_CONTENT_TABLE = (
    "CREATE TABLE ignored_content (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, "
    "ignored_at TEXT NOT NULL, reason TEXT)"
)
COLLECT_CLAIMS_OWNER = "CREATE INDEX collect_claims_owner ON collect_claims(owner)"
POSTS_ACCOUNT = "ALTER TABLE order_posts ADD COLUMN account TEXT NOT NULL DEFAULT ''"
REVIEWS_REASON = "ALTER TABLE reviews ADD COLUMN reason TEXT"
DELIVERED_MADE_FROM = "ALTER TABLE delivered_files ADD COLUMN made_from TEXT NOT NULL DEFAULT ''"
DELIVERED_FILES_TABLE = (
    "CREATE TABLE delivered_files (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, "
    "written_at TEXT NOT NULL)"
)


def _v1_initial(conn: sqlite3.Connection) -> None:
    """Photos (one row per path and identity), runs."""
    conn.execute(
        """
        CREATE TABLE photos (
            id           INTEGER PRIMARY KEY,
            path         TEXT    NOT NULL,
            folder       TEXT    NOT NULL,
            sha256       TEXT    NOT NULL,           -- '' for a broken file that was not hashed
            size         INTEGER NOT NULL,
            mtime_ns     INTEGER NOT NULL,
            service      TEXT    NOT NULL,
            space        TEXT    NOT NULL,
            enhancements TEXT    NOT NULL,           -- JSON list of canonical titles
            identity     TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            current      INTEGER NOT NULL DEFAULT 1, -- the row that stands for the file now
            order_id     TEXT,
            image_id     TEXT,
            eta          INTEGER,
            submitted_at TEXT,
            result_urls  TEXT    NOT NULL DEFAULT '[]',
            output_paths TEXT    NOT NULL DEFAULT '[]',
            attempts     INTEGER NOT NULL DEFAULT 0,
            error        TEXT,
            retryable    INTEGER NOT NULL DEFAULT 0,
            failed_from  TEXT,                       -- the state a failure interrupted
            duplicate_of INTEGER REFERENCES photos(id),
            created_at   TEXT    NOT NULL,
            updated_at   TEXT    NOT NULL,
            UNIQUE (path, identity)
        )
        """
    )
    conn.execute(PHOTOS_CURRENT_PATH)
    conn.execute(PHOTOS_IDENTITY)
    conn.execute(
        """
        CREATE TABLE runs (
            id         INTEGER PRIMARY KEY,
            command    TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at   TEXT,
            outcome    TEXT,
            summary    TEXT NOT NULL DEFAULT '{}'
        )
        """
    )


def _v2_charges_and_posts(conn: sqlite3.Connection) -> None:
    """Whether a photo's order was charged (never ordered again but by `aihd reorder`), and
    every order POST's intent and answer (the order window and the settle time start from it)."""
    conn.execute("ALTER TABLE photos ADD COLUMN charged INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "UPDATE photos SET charged = 1 WHERE state IN ('submitted', 'completed') "
        "OR (state = 'failed' AND failed_from IN ('submitted', 'completed'))"
    )
    conn.execute(
        """
        CREATE TABLE order_posts (
            id           INTEGER PRIMARY KEY,
            photo_id     INTEGER NOT NULL REFERENCES photos(id),
            order_id     TEXT    NOT NULL,
            boot         TEXT    NOT NULL,           -- the boot whose clock took intent_clock
            intent_clock REAL    NOT NULL,           -- CLOCK_BOOTTIME seconds at the intent
            intent_wall  REAL    NOT NULL,           -- Unix time at the intent (other boots)
            answer_clock REAL,
            answer_wall  REAL,
            outcome      TEXT                        -- accepted | lost | refused; NULL: killed
        )
        """
    )
    conn.execute(ORDER_POSTS_PHOTO)
    conn.execute("CREATE INDEX order_posts_intent ON order_posts(intent_wall)")


def _v3_account(conn: sqlite3.Connection) -> None:
    """One ledger per account: which manifest found a photo, claims of the runs sharing the
    ledger, the key fingerprint of each order, and the ledgers imported into this one."""
    conn.execute("ALTER TABLE photos ADD COLUMN manifest TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE photos ADD COLUMN claimed_by TEXT")
    conn.execute("ALTER TABLE photos ADD COLUMN claim_until REAL")  # Unix time
    conn.execute("ALTER TABLE order_posts ADD COLUMN key_fingerprint TEXT NOT NULL DEFAULT ''")
    conn.execute("CREATE INDEX order_posts_boot ON order_posts(boot, intent_clock)")
    conn.execute(PHOTOS_CLAIMS)
    conn.execute(
        """
        CREATE TABLE imports (
            path        TEXT PRIMARY KEY,            -- the ledger file imported, resolved
            imported_at TEXT    NOT NULL,
            photos      INTEGER NOT NULL
        )
        """
    )


def _v4_reviews(conn: sqlite3.Connection) -> None:
    """Reviews: a person's approve / reject of a completed photo, the latest one per photo."""
    conn.execute(
        """
        CREATE TABLE reviews (
            photo_id   INTEGER PRIMARY KEY REFERENCES photos(id),
            decision   TEXT NOT NULL,                -- 'approved' or 'rejected'
            decided_at TEXT NOT NULL,
            source     TEXT                          -- the command or decisions file it came from
        )
        """
    )


def _v5_ignored(conn: sqlite3.Connection) -> None:
    """Paths `aihd ignore` leaves out of every run; enhancement titles as the catalog writes them.

    Titles live apart from photos: a photo's identity holds them casefolded, and must not change.
    """
    conn.execute(IGNORED_TABLE)
    conn.execute(TITLES_TABLE)


def _v6_v3_projects(conn: sqlite3.Connection) -> None:
    """The v3 API's listing projects: one per account and address, created once, ever."""
    conn.execute(V3_PROJECTS_TABLE)


def _catalog_choices(conn: sqlite3.Connection) -> None:
    """The catalog entries a photo's identity names, each with every spelling seen (id, name
    or slug, title): a rename of one spelling is the same choice (pipeline/ordering/choices.py).

    ``key`` is what identities hold (the space's name, the item's casefolded title, as first
    seen), so no identity changes; the entries of photos already here start with those.
    """
    conn.execute(
        """
        CREATE TABLE catalog_choices (
            kind     TEXT NOT NULL,                  -- 'space' or 'item'
            scope    TEXT NOT NULL,                  -- the service; an item's: service, space key
            key      TEXT NOT NULL,                  -- the spelling identities hold
            entry_id TEXT,                           -- the latest spellings seen (NULL: unknown)
            name     TEXT,
            title    TEXT,
            seen_at  TEXT NOT NULL,
            PRIMARY KEY (kind, scope, key)
        )
        """
    )
    for sql in SEED_CHOICES:
        each = sql.replace(
            "json_array_elements_text(p.enhancements::json)", "json_each(p.enhancements)"
        )
        conn.execute(each.replace("chr(31)", "char(31)"))


# The entries of the photos a ledger holds already (v1 photos: v3 slugs are never renamed),
# in SQL both stores run (PostgreSQL's spelling; SQLite's json_each put in above).
SEED_CHOICES = (
    "INSERT INTO catalog_choices (kind, scope, key, name, seen_at) "
    "SELECT DISTINCT 'space', service, space, space, '' FROM photos "
    "WHERE service != '' AND service NOT LIKE 'v3:%' AND space != ''",
    "INSERT INTO catalog_choices (kind, scope, key, title, seen_at) "
    "SELECT DISTINCT 'item', p.service || chr(31) || p.space, e.value, "
    "coalesce(t.title, e.value), '' "
    "FROM photos p CROSS JOIN json_array_elements_text(p.enhancements::json) e "
    "LEFT JOIN titles t ON t.casefolded = e.value "
    "WHERE p.service != '' AND p.service NOT LIKE 'v3:%'",
)


def _ignored_by_content(conn: sqlite3.Connection) -> None:
    """`aihd ignore` by content: a photo ignored stays ignored renamed or copied. Paths stay
    for files that cannot be read (no content to name); a path ignored before keeps its photo's
    content ignored too."""
    conn.execute(IGNORED_CONTENT_TABLE)
    conn.execute(SEED_IGNORED)


SEED_IGNORED = (
    "INSERT INTO ignored_content (sha256, path, ignored_at, reason) "
    "SELECT p.sha256, min(p.path), min(i.ignored_at), min(i.reason) FROM ignored i "
    "JOIN photos p ON p.path = i.path AND p.current = 1 AND p.sha256 != '' GROUP BY p.sha256"
)


def _window_per_account(conn: sqlite3.Connection) -> None:
    """Each order POST's account (API endpoint and account name): accounts sharing a ledger
    file each have their own window. Earlier posts ('') count in every account's window."""
    conn.execute(POSTS_ACCOUNT)


def _collect_claims(conn: sqlite3.Connection) -> None:
    """Collect's claims on a charged photo's results (after_order.py): collects of one account
    run at once, and two of the same order download it once. No run lock needed any more."""
    conn.execute(
        "CREATE TABLE collect_claims (photo_id INTEGER PRIMARY KEY REFERENCES photos(id), "
        "owner TEXT NOT NULL, claim_until REAL NOT NULL)"
    )
    conn.execute(COLLECT_CLAIMS_OWNER)


def _delivered_files(conn: sqlite3.Connection) -> None:
    """The content of every file `aihd deliver` wrote: the only files it may ever delete."""
    conn.execute(DELIVERED_FILES_TABLE)


def _review_reasons(conn: sqlite3.Connection) -> None:
    """Why a person rejected a photo (the review desk asks), kept beside the decision."""
    conn.execute(REVIEWS_REASON)


def _delivered_files_made_from(conn: sqlite3.Connection) -> None:
    """What each delivered file was made from (its sources and the profile's settings): a
    re-delivery copies a file whose sources are unchanged instead of encoding it again."""
    conn.execute(DELIVERED_MADE_FROM)


# Failed photos an older aihd left that may have been charged: their outcome is unknown.
UNKNOWN_FROM_FAILED = (
    "UPDATE photos SET state = 'unknown', failed_from = NULL, retryable = 0 "
    "WHERE state = 'failed' AND charged = 0 AND order_id IS NOT NULL "
    "AND failed_from = 'submitting'"
)
UNKNOWN_FROM_TRUSTED_5XX = (
    "UPDATE photos SET state = 'unknown', failed_from = NULL, retryable = 0, error = "
    "'may have been charged: an older aihd took its 5xx answers for uncharged; the next run "
    "reads the order''s details' WHERE state = 'failed' AND charged = 0 AND order_id IS NOT NULL "
    "AND error LIKE 'the API did not take the order after %'"
)


def _unknown_state_and_claim_fences(conn: sqlite3.Connection) -> None:
    """The state ``unknown`` (a POST that may have charged, not yet confirmed either way),
    a fencing token per photo's claim (a takeover increments it), and how long after its
    intent each order POST was allowed to leave (settling counts from then).

    Photos an older aihd failed that may have been charged become ``unknown``: failed while
    their order's outcome was unknown, or failed as "the API did not take the order after N
    tries" after 5xx answers it trusted as uncharged (some were charged). The next run reads
    their orders' details and settles them; nothing is ordered again blindly."""
    conn.execute("ALTER TABLE photos ADD COLUMN claim_fence INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE order_posts ADD COLUMN send_within REAL NOT NULL DEFAULT 0")
    conn.execute(UNKNOWN_FROM_FAILED)
    conn.execute(UNKNOWN_FROM_TRUSTED_5XX)


def _serve_upscales(conn: sqlite3.Connection) -> None:
    """`aihd serve`: upscale wishes and upscales, and photos found by order id (serving.py)."""
    create_tables(conn)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_initial,
    _v2_charges_and_posts,
    _v3_account,
    _v4_reviews,
    _v5_ignored,
    _v6_v3_projects,
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


def migrate(conn: sqlite3.Connection, where: str, *, new: bool = False) -> None:
    """Bring the ledger at ``where`` to SCHEMA_VERSION; refuse files that are not ours or newer.

    ``new``: the file is being made a ledger (a new file, or `aihd ledger init`); otherwise an
    SQLite file with nothing in it is refused, not taken as a new ledger.
    """
    _check_ours(conn, where, new=new)
    while (version := _version(conn)) < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = _version(conn)
            if version < SCHEMA_VERSION:
                if version == 0:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"ledger {where} has schema version {version}, newer than this aihd knows "
            f"({SCHEMA_VERSION}); upgrade aihd, or use another ledger file"
        )


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_ours(conn: sqlite3.Connection, where: str, *, new: bool) -> None:
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    foreign = app_id not in (0, APPLICATION_ID)
    unmarked = app_id == 0 and _version(conn) == 0
    if unmarked:
        # A fresh file has no tables; one with tables but no mark belongs to something else.
        foreign = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
    if foreign:
        raise NotALedger(
            f"cannot open ledger {where}: it is an SQLite file of another tool, not an aihd "
            "ledger; nothing was spent: name a new file for the ledger"
        )
    if unmarked and not new:
        # Empty: a ledger emptied by a failed copy or a full disk looks just like this, and
        # taken as new it would order every photo again.
        raise NotALedger(empty_message(where))


def empty_message(where: str) -> str:
    """Why an empty file at a ledger's path is refused, and the two ways on."""
    return (
        f"ledger {where} is an empty file, not a ledger (a failed copy or a full disk?); "
        "nothing was spent: restore it from a backup, or if it really is a new ledger: "
        f"aihd ledger init --into {shell_quoted(where)}"
    )
