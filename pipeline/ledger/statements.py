"""The ledger's SQL that both stores run, written once, in SQLite's form (``?`` placeholders,
``json_each(?)`` for a list; a photo's row and its INSERT are sqlite_rows.py's). The PostgreSQL
store runs the same text through ``postgres_sql.pg`` (or its ``SqliteStyle`` connection), which
turns ``?`` into ``%s`` and ``json_each(?)`` into ``json_array_elements_text(?::json)``; none of
these statements holds a literal ``%``.

What differs between the two stores is not here but in small named variants beside each store:
locks (PostgreSQL's advisory locks, SQLite's one writer), the order window's query (each store's
clock), the claims, and the scope of folders a read is limited to. Functions build the few
statements whose ``WHERE`` is made per call.
"""

from __future__ import annotations

__all__ = [
    "CACHED_HASHES",
    "CLAIM_HOLDER",
    "CLEAR_REVIEWS",
    "FINISH_RUN",
    "IGNORED_PATHS",
    "IMPORT_DONE",
    "IMPORT_RECORD",
    "LAST_POST",
    "LAST_POST_ID",
    "LAST_RUN",
    "MARK_LOST",
    "NEXT_PHOTO_ID",
    "NOT_CURRENT",
    "OUTPUT_PATHS",
    "PHOTO_BY_ID",
    "RECORD_INTENT",
    "RECORD_REVIEW",
    "RELEASE_CLAIM",
    "RELEASE_CLAIMS",
    "REMEMBER_TITLE",
    "REORDER",
    "REPLACE_V3_PROJECT",
    "RESET_FAILED",
    "REVIEWS",
    "SAVE_V3_PROJECT",
    "TITLES",
    "V3_PROJECT",
    "counts_by_folder_sql",
    "counts_sql",
    "mark_sql",
    "photos_sql",
]

from pipeline.ledger.sqlite_rows import COLUMNS

# -- runs ----------------------------------------------------------------------------------
FINISH_RUN = "UPDATE runs SET ended_at = ?, outcome = ?, summary = ? WHERE id = ?"
LAST_RUN = "SELECT * FROM runs ORDER BY id DESC LIMIT 1"

# -- photos --------------------------------------------------------------------------------
NEXT_PHOTO_ID = "SELECT coalesce(max(id), 0) + 1 FROM photos"
PHOTO_BY_ID = f"SELECT {COLUMNS} FROM photos WHERE id = ?"
CACHED_HASHES = "SELECT path, size, mtime_ns, sha256 FROM photos WHERE current = 1 AND sha256 != ''"
# A path's other contents stop being current (a file replaced by another under its name).
NOT_CURRENT = "UPDATE photos SET current = 0 WHERE path = ? AND current = 1 AND identity != ?"
OUTPUT_PATHS = "UPDATE photos SET output_paths = ?, updated_at = ? WHERE id = ?"
# `aihd reorder`: the charged mark cleared, so the next run pays again (never mid-order).
REORDER = (
    "UPDATE photos SET state = 'pending', order_id = NULL, image_id = NULL, eta = NULL, "
    "submitted_at = NULL, charged = 0, duplicate_of = NULL, error = NULL, retryable = 0, "
    "failed_from = NULL, updated_at = ? "
    "WHERE id IN (SELECT CAST(value AS INTEGER) FROM json_each(?)) AND state != 'submitting' "
    f"RETURNING {COLUMNS}"
)


def photos_sql(where: str) -> str:
    """Photos' rows where ``where`` holds, in the order they were found."""
    return f"SELECT {COLUMNS} FROM photos WHERE {where} ORDER BY id"


def counts_sql(scope: str) -> str:
    """Current photos per state, in ``scope`` (a store's clause over ``folder``)."""
    return f"SELECT state, count(*) FROM photos WHERE current = 1 AND {scope} GROUP BY state"


def counts_by_folder_sql(scope: str) -> str:
    """Current photos per folder and state, in ``scope``."""
    return (
        f"SELECT folder, state, count(*) FROM photos WHERE current = 1 AND {scope} "
        "GROUP BY folder, state ORDER BY folder"
    )


def mark_sql(sets: str, only_if: str) -> str:
    """One photo's change (``sets``, then ``updated_at``) where ``only_if`` still holds, its
    row returned: parameters are ``sets``', the time, the photo's id, then ``only_if``'s."""
    return f"UPDATE photos SET {sets}, updated_at = ? WHERE id = ? {only_if} RETURNING {COLUMNS}"


# -- claims and order POSTs: the SQL that keeps a photo from being paid twice --------------
CLAIM_HOLDER = "SELECT claimed_by FROM photos WHERE id = ?"
RELEASE_CLAIMS = "UPDATE photos SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ?"
RELEASE_CLAIM = (
    "UPDATE photos SET claimed_by = NULL, claim_until = NULL WHERE id = ? AND claimed_by = ?"
)
# The intent: recorded in the transaction that took the photo to `submitting` under its
# claim, before the POST leaves (its boot clock, Unix time, key, account, send_within).
RECORD_INTENT = (
    "INSERT INTO order_posts (photo_id, order_id, boot, intent_clock, intent_wall, "
    "key_fingerprint, account, send_within) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# An answer lost: the POST may have charged, so the photo is `unknown` until its details say.
MARK_LOST = (
    "UPDATE photos SET state = 'unknown', error = ?, updated_at = ? "
    "WHERE id = ? AND state = 'submitting'"
)
LAST_POST = (
    "SELECT id, boot, intent_clock + send_within FROM order_posts WHERE photo_id = ? "
    "ORDER BY id DESC LIMIT 1"
)
LAST_POST_ID = "SELECT coalesce(max(id), 0) FROM order_posts"
# Failed photos back to work: one that failed while its order's outcome was unknown goes back
# to `unknown` (its order is read, never posted blindly); a charged one is collect's; a held
# one (sqlite_found.HELD) only reorder frees; a broken file (no hash) the next scan checks.
# Parameters: the time, and 1 to take permanent failures too.
RESET_FAILED = (
    "UPDATE photos SET "
    "state = CASE WHEN failed_from IN ('submitting', 'unknown') THEN 'unknown' "
    "ELSE 'pending' END, "
    "order_id = CASE WHEN failed_from IN ('submitting', 'unknown') THEN order_id END, "
    "error = NULL, retryable = 0, failed_from = NULL, updated_at = ? "
    "WHERE state = 'failed' AND current = 1 AND sha256 != '' AND charged = 0 "
    "AND duplicate_of IS NULL AND (retryable = 1 OR ? = 1)"
)

# -- `aihd ignore`, the catalog's titles ---------------------------------------------------
IGNORED_PATHS = "SELECT path FROM ignored"
REMEMBER_TITLE = (
    "INSERT INTO titles (casefolded, title) VALUES (?, ?) "
    "ON CONFLICT (casefolded) DO UPDATE SET title = excluded.title"
)
TITLES = "SELECT casefolded, title FROM titles"

# -- the v3 API's listing projects: one per account and address ------------------------------
V3_PROJECT = "SELECT project_id FROM v3_projects WHERE account = ? AND address = ?"
SAVE_V3_PROJECT = (
    "INSERT INTO v3_projects (account, address, project_id, created_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (account, address) DO NOTHING"
)
# The new project takes the place of the one deleted on the server, unless another run
# replaced it first (the last parameter: the project that was deleted).
REPLACE_V3_PROJECT = (
    "INSERT INTO v3_projects (account, address, project_id, created_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (account, address) DO UPDATE "
    "SET project_id = excluded.project_id, created_at = excluded.created_at "
    "WHERE v3_projects.project_id = ?"
)

# -- review --------------------------------------------------------------------------------
# A decision on a completed photo, the latest replacing the last.
RECORD_REVIEW = (
    "INSERT INTO reviews (photo_id, decision, decided_at, source, reason) "
    "SELECT id, ?, ?, ?, ? FROM photos WHERE id = ? AND state = 'completed' "
    "ON CONFLICT (photo_id) DO UPDATE SET decision = excluded.decision, "
    "decided_at = excluded.decided_at, source = excluded.source, reason = excluded.reason"
)
# A list of ids is one JSON parameter; its values are cast, as PostgreSQL reads them as text.
CLEAR_REVIEWS = (
    "DELETE FROM reviews WHERE photo_id IN (SELECT CAST(value AS INTEGER) FROM json_each(?))"
)
REVIEWS = "SELECT photo_id, decision, decided_at, source, reason FROM reviews"

# -- `aihd ledger import` --------------------------------------------------------------------
IMPORT_DONE = "SELECT 1 FROM imports WHERE path = ?"
IMPORT_RECORD = "INSERT INTO imports (path, imported_at, photos) VALUES (?, ?, ?)"
