"""``aihd deliver``: approved photos written for an MLS into ``delivery/<listing>/``, with a
disclosure file per listing naming each photo's original and what AI changed in it.

Names are numbered in the manifest's order, exteriors first (an MLS's first photo is the
cover). A listing is written into a hidden folder and swapped into place whole, so it never
holds a photo that was rejected since, nor half of a delivery.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.api.tools import describe
from pipeline.errors import PhotoError
from pipeline.ledger import Decision, Ledger, PhotoRow, State
from pipeline.manifest.listings import Listing, listings
from pipeline.manifest.loader import Manifest
from pipeline.manifest.profiles import DeliveryProfile
from pipeline.review.decisions import manifest_rows
from pipeline.review.mls import MlsJpeg, render_for_mls

__all__ = ["DISCLOSURE_COLUMNS", "DeliveryReport", "deliver"]

DISCLOSURE_NAME = "disclosure.csv"
DISCLOSURE_COLUMNS = (
    "file",
    "original",
    "enhanced_result",
    "folder",
    "space",
    "ai_altered",
    "tool",
    "changes",
    "order_id",
    "width",
    "height",
    "bytes",
    "jpeg_quality",
    "approved_at",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(slots=True)
class DeliveryReport:
    """What ``deliver`` wrote, and what it could not."""

    folder: Path
    delivered: dict[str, int] = field(default_factory=dict)  # listing -> photos
    failed: list[str] = field(default_factory=list)  # "path: reason"
    not_approved: int = 0  # completed photos with no approval (unreviewed or rejected)
    withdrawn: list[str] = field(default_factory=list)  # listings delivered before, none now

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def deliver(
    manifest: Manifest, ledger: Ledger, profile: DeliveryProfile, folder: Path
) -> DeliveryReport:
    """Write every listing's approved photos under ``folder``; one with none now is removed."""
    report = DeliveryReport(folder)
    rows = manifest_rows(manifest, ledger)
    reviews = ledger.reviews()
    approved = {
        r.id: reviews[r.id].decided_at
        for r in rows
        if r.state is State.COMPLETED
        and r.output_paths
        and r.id in reviews
        and reviews[r.id].decision is Decision.APPROVED
    }
    report.not_approved = sum(1 for r in rows if r.state is State.COMPLETED) - len(approved)
    for listing in listings(manifest):
        photos = _listing_photos(listing, [r for r in rows if r.id in approved])
        if photos:
            written = _write_listing(listing.name, photos, approved, profile, folder, report)
            report.delivered[listing.name] = written
        elif (folder / _safe(listing.name) / DISCLOSURE_NAME).is_file():
            # An earlier delivery of ours whose photos have all been rejected since.
            shutil.rmtree(folder / _safe(listing.name))
            report.withdrawn.append(listing.name)
    return report


def _listing_photos(listing: Listing, rows: list[PhotoRow]) -> list[PhotoRow]:
    """Exterior folders first, then the others, each in the manifest's order; photos by name."""
    rank = {spec.name: n for n, spec in enumerate(listing.folders)}
    mine = [r for r in rows if r.folder in rank]
    return sorted(mine, key=lambda r: (rank[r.folder], r.path))


def _write_listing(
    name: str,
    photos: list[PhotoRow],
    approved_at: dict[int, str],
    profile: DeliveryProfile,
    root: Path,
    report: DeliveryReport,
) -> int:
    safe = _safe(name)
    partial = root / f".{safe}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    width = max(2, len(str(len(photos))))
    disclosure: list[dict[str, object]] = []
    for photo in photos:
        result = Path(photo.output_paths[0])
        try:
            jpeg = render_for_mls(result, profile, Path(photo.path))
        except PhotoError as exc:
            report.failed.append(str(exc))
            continue
        file_name = f"{len(disclosure) + 1:0{width}d}-{_safe(Path(photo.path).stem)}.jpg"
        (partial / file_name).write_bytes(jpeg.data)
        disclosure.append(_disclosure_row(file_name, photo, result, jpeg, approved_at[photo.id]))
    _write_disclosure(partial / DISCLOSURE_NAME, disclosure)
    _swap_into_place(partial, root / safe)
    return len(disclosure)


def _disclosure_row(
    file_name: str, photo: PhotoRow, result: Path, jpeg: MlsJpeg, approved_at: str
) -> dict[str, object]:
    words = describe(photo.service, photo.space, photo.enhancements)
    changes = [f"AI {words.tool.lower()} ({words.what or 'unknown changes'})", *words.options]
    if (jpeg.width, jpeg.height) != jpeg.source_size:
        changes.append(f"resized from {jpeg.source_size[0]}x{jpeg.source_size[1]}")
    return {
        "file": file_name,
        "original": photo.path,
        "enhanced_result": str(result),
        "folder": photo.folder,
        "space": words.space,
        "ai_altered": "yes",
        "tool": f"AI HomeDesign {words.tool}",
        "changes": "; ".join(changes),
        "order_id": photo.order_id or "",
        "width": jpeg.width,
        "height": jpeg.height,
        "bytes": len(jpeg.data),
        "jpeg_quality": jpeg.quality,
        "approved_at": approved_at,
    }


def _write_disclosure(path: Path, rows: list[dict[str, object]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, DISCLOSURE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def _swap_into_place(partial: Path, target: Path) -> None:
    """Replace the listing's last delivery with this one, never leaving a mix of the two."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)


def _safe(name: str) -> str:
    """A file or folder name any MLS upload form and file system takes."""
    return _UNSAFE.sub("-", name).strip("-.") or "photo"
