"""``aihd review``: a static before/after page per manifest, for a person to approve or reject.

One ``index.html`` with its assets and thumbnails beside it; it works from ``file://`` with no
server and no network. A static page cannot write the ledger: its decisions are exported as a
small JSON file that ``aihd review --apply FILE`` records (see decisions.py).
"""

from __future__ import annotations

import html
import json
import shlex
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from pipeline.api.tools import V1_SERVICE, Described, describe
from pipeline.api.v3_slugs import build_spec, identity_parts
from pipeline.ledger import Ledger, PhotoRow, Review, State
from pipeline.manifest.listings import is_exterior, listing_name, listings
from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.review.decisions import manifest_rows, reorder_command
from pipeline.review.thumbnails import Thumbnails

__all__ = ["EXPORT_NAME", "ReviewPage", "apply_command", "write_review"]

_ASSETS = ("review.css", "review.js")
EXPORT_NAME = "aihd-decisions.json"  # the file name review.js gives the export
_PAID = frozenset({State.SUBMITTING, State.SUBMITTED, State.COMPLETED})


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """What ``write_review`` wrote."""

    index: Path
    photos: int
    thumbnails_made: int


def write_review(manifest: Manifest, ledger: Ledger, folder: Path) -> ReviewPage:
    """Write the review page of ``manifest``'s photos into ``folder``; return where it is."""
    folder.mkdir(parents=True, exist_ok=True)
    thumbnails = Thumbnails(folder / "thumbs")
    rows = manifest_rows(manifest, ledger)
    reviews = ledger.reviews()
    spelled = ledger.titles()  # v1 toggles as the catalog spells them (keyed casefolded)
    generated_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    data = {
        "manifest": str(manifest.path),
        "ledger": ledger.path,
        "generated_at": generated_at,
        # Hints are whole commands, quoted for a shell, so they work when pasted.
        "collect_command": shlex.join(["aihd", "collect", str(manifest.path)]),
        "folders": _folders(manifest),
        "photos": [
            _photo(manifest, row, reviews.get(row.id), thumbnails, spelled)
            for row in _ordered(manifest, rows)
        ],
    }
    for name in _ASSETS:
        source = resources.files("pipeline.review") / "assets" / name
        with resources.as_file(source) as path:
            shutil.copyfile(path, folder / name)
    # A script, not a .json: a page opened from file:// may not fetch() files beside it.
    script = "window.AIHD_REVIEW = " + json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    _write(folder / "data.js", script + ";\n")
    index = folder / "index.html"
    _write(index, _html(manifest))
    return ReviewPage(index=index, photos=len(rows), thumbnails_made=thumbnails.made)


def _ordered(manifest: Manifest, rows: list[PhotoRow]) -> list[PhotoRow]:
    """Listing by listing, exteriors first, each folder's photos by path: delivery's order."""
    rank = {
        folder.name: n
        for n, folder in enumerate(f for listing in listings(manifest) for f in listing.folders)
    }
    return sorted(rows, key=lambda row: (rank.get(row.folder, len(rank)), row.path))


def _folders(manifest: Manifest) -> list[dict[str, object]]:
    folders = []
    for listing in listings(manifest):
        for folder in listing.folders:
            words = _folder_words(manifest, folder)
            folders.append(
                {
                    "name": folder.name,
                    "listing": listing_name(folder),
                    "tool": words.tool,
                    "space": words.space,
                    "exterior": is_exterior(folder),
                    "enhancements": list(words.options),
                }
            )
    return folders


def _folder_words(manifest: Manifest, folder: FolderSpec) -> Described:
    """A folder's tool and options in words (the manifest was checked when it was loaded)."""
    if manifest.api != "v3":
        return describe(V1_SERVICE, folder.space, folder.enhancements)
    spec = build_spec(
        folder.tool, space=folder.space, enhancements=folder.enhancements, **dict(folder.choices)
    )
    return describe(spec.service, *identity_parts(spec))


def _photo(
    manifest: Manifest,
    row: PhotoRow,
    review: Review | None,
    thumbnails: Thumbnails,
    spelled: dict[str, str],
) -> dict[str, object]:
    original = Path(row.path)
    result = Path(row.output_paths[0]) if row.output_paths else None
    words = describe(row.service, row.space, [spelled.get(e, e) for e in row.enhancements])
    return {
        "id": row.id,
        "name": original.name,
        "path": row.path,
        "sha256": row.sha256,
        "folder": row.folder,
        "tool": words.tool,
        "space": words.space,
        "enhancements": list(words.options),
        "state": row.state.value,
        "order_id": row.order_id,
        "cost": 1 if row.state in _PAID else 0,  # credits: one per order (service.credit: 1)
        "error": row.error,
        "before": _thumb(thumbnails, original),
        "after": _thumb(thumbnails, result) if result is not None else None,
        "original_url": original.as_uri(),
        "result_url": result.as_uri() if result is not None else None,
        "decision": review.decision.value if review is not None else None,
        "decided_at": review.decided_at if review is not None else None,
        "reorder_command": reorder_command(manifest, [row.path]),
    }


def _thumb(thumbnails: Thumbnails, source: Path) -> str | None:
    name = thumbnails.of(source)
    return f"thumbs/{name}" if name is not None else None


def _html(manifest: Manifest) -> str:
    title = html.escape(f"aihd review: {manifest.path.name}")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="review.css">
</head>
<body>
<header>
  <h1>{title}</h1>
  <p id="counts" aria-live="polite"></p>
  <nav id="filters" aria-label="Filter photos">
    <button type="button" data-filter="all" aria-pressed="true">All</button>
    <button type="button" data-filter="unreviewed">Unreviewed</button>
    <button type="button" data-filter="approved">Approved</button>
    <button type="button" data-filter="rejected">Rejected</button>
    <button type="button" data-filter="failed">Failed</button>
    <button type="button" data-filter="waiting">Not collected</button>
  </nav>
  <button type="button" id="export">Export decisions</button>
  <p class="keys">Keys: <kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous / next photo,
    <kbd>a</kbd> approve, <kbd>r</kbd> reject, <kbd>u</kbd> undecide. Then record the
    exported file (where your browser saved it):
    <code>{html.escape(apply_command(manifest))}</code></p>
</header>
<main id="photos"></main>
<script src="data.js"></script>
<script src="review.js"></script>
</body>
</html>
"""


def apply_command(manifest: Manifest) -> str:
    """The command that records the page's export, as the browser saves it by default."""
    quoted = shlex.quote(str(manifest.path))
    return f"aihd review {quoted} --apply ~/Downloads/{EXPORT_NAME}"


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
