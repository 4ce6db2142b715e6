"""`aihd export`: every current photo, with the columns a user reconciles against."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app.export import COLUMNS, export_rows
from pipeline.ledger import FoundPhoto, PhotoOptions, open_ledger
from pipeline.ledger.sqlite import SqliteLedger

INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ("sky", "white balance"))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """A ledger with a completed photo, its duplicate, a failed photo and an edited one."""
    opened = open_ledger(tmp_path / "run.ledger.sqlite")
    done, _copy, failed, edited = opened.record_found(
        [
            FoundPhoto("/p/kitchen.jpg", "listing", 10, 1, "a" * 64, INDOOR),
            FoundPhoto("/p/kitchen copy.jpg", "listing", 10, 1, "a" * 64, INDOOR),
            FoundPhoto("/p/bath.jpg", "listing", 20, 1, "b" * 64, INDOOR),
            FoundPhoto("/p/hall.jpg", "listing", 30, 1, "c" * 64, INDOOR),
        ]
    )
    opened.mark_uploaded(done.id, "order-1")
    opened.mark_submitting(done.id)
    opened.mark_submitted(done.id, "image-1", 40)
    opened.mark_completed(
        done.id,
        ["http://r/1.jpg", "http://r/2.jpg"],
        ["/out/listing/kitchen.jpg", "/out/listing/kitchen_2.jpg"],
    )
    opened.mark_failed(failed.id, "invalid-image", retryable=False)
    # The edit leaves the old hall row as history: only the current one is exported.
    opened.record_found([FoundPhoto("/p/hall.jpg", "listing", 31, 2, "d" * 64, INDOOR)])
    assert edited.state == "pending"
    yield opened
    opened.close()


def test_csv_has_every_column_and_one_row_per_current_photo(ledger: SqliteLedger) -> None:
    out = io.StringIO()
    assert export_rows(ledger, "csv", out) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {"/p/kitchen.jpg", "/p/kitchen copy.jpg", "/p/bath.jpg", "/p/hall.jpg"}

    done = by_path["/p/kitchen.jpg"]
    assert done["folder"] == "listing" and done["sha256"] == "a" * 64
    assert done["space"] == "space-ie-indoor"
    assert done["enhancements"] == "sky;white balance"
    assert (done["state"], done["order_id"], done["image_id"], done["eta_seconds"]) == (
        "completed",
        "order-1",
        "image-1",
        "40",
    )
    assert done["submitted_at"].endswith("+00:00")
    assert done["result_url"] == "http://r/1.jpg"
    assert done["result_urls"] == "http://r/1.jpg;http://r/2.jpg"
    assert done["output_path"] == "/out/listing/kitchen.jpg"
    assert (done["attempts"], done["error"], done["retryable"]) == ("1", "", "false")
    # Toggles the tool table does not know count as alterations, named as they are.
    assert (done["altered"], done["alterations"]) == ("true", "sky;white balance")

    copy = by_path["/p/kitchen copy.jpg"]
    assert (copy["state"], copy["duplicate_of"], copy["attempts"]) == (
        "duplicate",
        "/p/kitchen.jpg",
        "0",
    )
    failed = by_path["/p/bath.jpg"]
    assert (failed["state"], failed["error"], failed["retryable"]) == (
        "failed",
        "invalid-image",
        "false",
    )
    assert failed["result_url"] == "" and failed["order_id"] == ""
    assert by_path["/p/hall.jpg"]["sha256"] == "d" * 64


def test_jsonl_has_every_column_with_lists_and_nulls(ledger: SqliteLedger) -> None:
    out = io.StringIO()
    assert export_rows(ledger, "jsonl", out) == 4
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    rows = {r["path"]: r for r in map(json.loads, lines)}
    assert all(tuple(r) == COLUMNS for r in rows.values())

    done = rows["/p/kitchen.jpg"]
    assert done["enhancements"] == ["sky", "white balance"]
    assert done["altered"] is True and done["alterations"] == ["sky", "white balance"]
    assert done["eta_seconds"] == 40 and done["attempts"] == 1
    assert done["result_url"] == "http://r/1.jpg"
    assert done["result_urls"] == ["http://r/1.jpg", "http://r/2.jpg"]
    assert done["output_paths"] == ["/out/listing/kitchen.jpg", "/out/listing/kitchen_2.jpg"]
    assert done["duplicate_of"] is None and done["error"] is None

    assert rows["/p/kitchen copy.jpg"]["duplicate_of"] == "/p/kitchen.jpg"
    failed = rows["/p/bath.jpg"]
    assert (failed["state"], failed["error"], failed["retryable"]) == (
        "failed",
        "invalid-image",
        False,
    )
    assert failed["result_url"] is None and failed["output_paths"] == []


def test_empty_ledger_exports_a_header_only(tmp_path: Path) -> None:
    empty = open_ledger(tmp_path / "empty.sqlite")
    try:
        out = io.StringIO()
        assert export_rows(empty, "csv", out) == 0
        assert out.getvalue() == ",".join(COLUMNS) + "\n"
        out = io.StringIO()
        assert export_rows(empty, "jsonl", out) == 0
        assert out.getvalue() == ""
    finally:
        empty.close()
