"""``aihd review``: a static before/after page per manifest, for a person to approve or reject.

One ``index.html`` with its assets and thumbnails beside it; it works from ``file://`` with no
server and no network. A static page cannot write the ledger: its decisions are exported as a
small JSON file that ``aihd review --apply FILE`` records (see decisions.py). The review desk
(desk/) serves the same template, script and style, reading and writing the ledger live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.filenames import shell_quoted, shown
from pipeline.ledger import Ledger, PhotoRow
from pipeline.manifest.loader import Manifest
from pipeline.review.sheet import Sheet
from pipeline.review.templating import ASSETS, asset_bytes, render
from pipeline.review.thumbnails import Thumbnails

__all__ = ["EXPORT_NAME", "ReviewPage", "apply_command", "write_review"]

EXPORT_NAME = "aihd-decisions.json"  # the file name review.js gives the export


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """What ``write_review`` wrote."""

    index: Path
    photos: int
    thumbnails_made: int


class _PageImages:
    """Thumbnails made now, beside the page; full size: the files themselves."""

    def __init__(self, thumbnails: Thumbnails) -> None:
        self.thumbnails = thumbnails

    def thumb(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None:
        name = self.thumbnails.of(Path(source))
        return f"thumbs/{name}" if name is not None else None

    def full(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None:
        return Path(source).as_uri()


def write_review(manifest: Manifest, ledger: Ledger, folder: Path) -> ReviewPage:
    """Write the review page of ``manifest``'s photos into ``folder``; return where it is."""
    folder.mkdir(parents=True, exist_ok=True)
    thumbnails = Thumbnails(folder / "thumbs")
    data = Sheet([manifest], _PageImages(thumbnails)).document(ledger)
    for name in ASSETS:
        _write_bytes(folder / name, asset_bytes(name))
    # A script, not a .json: a page opened from file:// may not fetch() files beside it.
    script = "window.AIHD_REVIEW = " + _script_json(data)
    _write_bytes(folder / "data.js", (script + ";\n").encode("utf-8"))
    index = folder / "index.html"
    html = render(
        "review.html",
        served=False,
        title=f"aihd review: {shown(manifest.path.name)}",
        heading=f"aihd review: {shown(manifest.path.name)}",
        assets="",
        apply_command=apply_command(manifest),
    )
    _write_bytes(index, html.encode("utf-8"))
    photos = data["photos"]
    assert isinstance(photos, list)
    return ReviewPage(index=index, photos=len(photos), thumbnails_made=thumbnails.made)


def apply_command(manifest: Manifest) -> str:
    """The command that records the page's export, as the browser saves it by default."""
    quoted = shell_quoted(str(manifest.path))
    return f"aihd review {quoted} --apply ~/Downloads/{EXPORT_NAME}"


def _script_json(data: object) -> str:
    """JSON that stays data inside a script file: ASCII (a name the disk holds in no valid
    UTF-8 is escaped, not an error), and no "</" (that could end a script element)."""
    return json.dumps(data).replace("</", "<\\/")


def _write_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(data)
    partial.replace(path)
