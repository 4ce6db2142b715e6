"""`aihd export`: one row per current photo of the ledger, as CSV or JSON lines.

A photo's tool, space and enhancements are shown as a person reads them (pipeline.api.tools):
"Day to Dusk", "Sky: Golden Hour", never the API's slugs."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Literal, TextIO

from pipeline.api.tools import describe
from pipeline.filenames import shown
from pipeline.ledger import Ledger, PhotoRow

__all__ = ["COLUMNS", "export_rows"]

COLUMNS = (
    "path",
    "folder",
    "sha256",
    "space",
    "enhancements",
    "state",
    "order_id",
    "image_id",
    "eta_seconds",
    "submitted_at",
    "result_url",
    "result_urls",
    "output_path",
    "output_paths",
    "attempts",
    "error",
    "retryable",
    "duplicate_of",
    "tool",
    "decision",  # the review's: approved, rejected, or empty (not decided)
    "decision_reason",
    "decided_at",
    "altered",  # whether AI altered what the photo shows (the tool table's; unknown: true)
    "alterations",  # each alteration in words, as a delivery's disclosure says it
    "upscale",  # v1 upscales (aihd serve): wanted, requesting, requested, completed, failed
    "upscale_paths",
)


def export_rows(
    ledger: Ledger,
    fmt: Literal["csv", "jsonl"],
    out: TextIO,
    scope: Sequence[str] | None = None,
) -> int:
    """Write every current photo to ``out`` as CSV (with a header) or JSON lines; return rows."""
    original_paths: dict[int, str] = {}  # only originals of duplicates: few, and often repeated

    def original_path(photo_id: int | None) -> str | None:
        if photo_id is None:
            return None
        if photo_id not in original_paths:
            original_paths[photo_id] = shown(ledger.get(photo_id).path)
        return original_paths[photo_id]

    # The ledger keys titles casefolded (part of a photo's identity); the spelling the catalog
    # gave them was kept apart by the runs that resolved them.
    spelled = ledger.titles()
    reviews = ledger.reviews()
    upscales: dict[int, list[tuple[str, str | None]]] = {}
    for upscale in ledger.upscales(scope):
        upscales.setdefault(upscale.photo_id, []).append((upscale.state, upscale.output_path))
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    written = 0
    for row in ledger.photos(scope=scope):
        record = _record(row, original_path(row.duplicate_of))
        words = describe(row.service, row.space, [spelled.get(t, t) for t in row.enhancements])
        record.update(tool=words.tool, space=words.space, enhancements=list(words.options))
        review = reviews.get(row.id)
        record.update(
            decision=review.decision.value if review is not None else None,
            decision_reason=review.reason if review is not None else None,
            decided_at=review.decided_at if review is not None else None,
        )
        record.update(altered=words.alters, alterations=list(words.altered))
        asked = upscales.get(row.id, [])
        record["upscale"] = ";".join(state for state, _ in asked) or None
        record["upscale_paths"] = [shown(path) for _, path in asked if path]
        if writer is not None:
            writer.writerow(_csv_cell(record[c]) for c in COLUMNS)
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += 1
    return written


def _record(row: PhotoRow, duplicate_of: str | None) -> dict[str, object]:
    return {
        "path": shown(row.path),
        "folder": shown(row.folder),
        "sha256": row.sha256,
        "space": row.space,
        "enhancements": list(row.enhancements),
        "state": row.state.value,
        "order_id": row.order_id,
        "image_id": row.image_id,
        "eta_seconds": row.eta,
        "submitted_at": row.submitted_at,
        "result_url": row.result_urls[0] if row.result_urls else None,
        "result_urls": list(row.result_urls),
        "output_path": shown(row.output_paths[0]) if row.output_paths else None,
        "output_paths": [shown(p) for p in row.output_paths],
        "attempts": row.attempts,
        "error": row.error,
        "retryable": row.retryable,
        "duplicate_of": duplicate_of,
    }


def _csv_cell(value: object) -> str:
    # Spreadsheet-friendly: lists joined with ';', booleans as words, missing values empty.
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
