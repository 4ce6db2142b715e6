"""``aihd deliver``: approved photos written for an MLS into ``delivery/<listing>/``, with a
disclosure file per listing naming each photo's original and what AI changed in it.

Names are numbered in the manifest's order, exteriors first (an MLS's first photo is the
cover). A listing is delivered whole: only once every completed photo of it is decided (unless
``--partial``). It is written into a hidden folder and swapped into place, so it never holds a
photo that was rejected since, nor half of a delivery; where it goes, and what happens to the
folder it replaces, is delivery_folder.py's (deliver deletes only files it wrote).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.api.tools import describe
from pipeline.errors import PhotoError
from pipeline.ledger import Decision, Ledger, PhotoRow, State
from pipeline.manifest.folders import relative
from pipeline.manifest.listings import Listing, listings
from pipeline.manifest.loader import Manifest
from pipeline.manifest.profiles import DeliveryProfile
from pipeline.review.decisions import manifest_rows
from pipeline.review.delivery_folder import (
    STAGE_PREFIX,
    Clearing,
    aside_folder,
    clear_folder,
    refuse_output,
    sort_out,
    stale_folders,
    swap_in,
    swap_out,
)
from pipeline.review.mls import MlsJpeg, render_for_mls

__all__ = ["DISCLOSURE_COLUMNS", "DeliveryReport", "deliver", "listing_label"]

APPROVED = Decision.APPROVED

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
    """What ``deliver`` wrote (or, in a dry run, would write), and what it could not."""

    folder: Path
    delivered: dict[str, int] = field(default_factory=dict)  # listing folder -> photos
    failed: list[str] = field(default_factory=list)  # "path: reason"
    not_approved: int = 0  # completed photos rejected, in the listings considered
    undecided: list[tuple[str, int, int]] = field(default_factory=list)  # left out: (listing,
    # photos not decided yet, completed photos)
    withdrawn: list[str] = field(default_factory=list)  # listings delivered before, none now
    clearing: Clearing = field(default_factory=Clearing)
    planned: list[str] = field(default_factory=list)  # --dry-run: what would be done

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def deliver(
    manifest: Manifest,
    ledger: Ledger,
    profile: DeliveryProfile,
    folder: Path,
    *,
    partial: bool = False,
    dry_run: bool = False,
    where: str = "-o",
) -> DeliveryReport:
    """Write each listing whose completed photos are all decided (any, with ``partial``) into
    ``folder/<listing>/``; one with no approved photo now is taken away. Refuses (UsageError,
    nothing written) a folder that is, holds or lies in a photo or results folder."""
    root = folder.resolve()
    rows = manifest_rows(manifest, ledger)
    reviews = ledger.reviews()
    completed = [r for r in rows if r.state is State.COMPLETED and r.output_paths]
    refuse_output(root, manifest, ledger, [Path(r.output_paths[0]) for r in completed], where)
    report = DeliveryReport(root)
    if not dry_run:
        for stale in stale_folders(root):
            clear_folder(stale, aside_folder(root, "interrupted-delivery"), ledger, report.clearing)
    for listing in listings(manifest):
        photos = _listing_photos(listing, completed)
        decided = {r.id: reviews[r.id] for r in photos if r.id in reviews}
        approved = [r for r in photos if r.id in decided and decided[r.id].decision is APPROVED]
        undecided = len(photos) - len(decided)
        if undecided and not partial:
            report.undecided.append((listing_label(listing, manifest), undecided, len(photos)))
            continue
        report.not_approved += len(decided) - len(approved)
        target = root / _safe(listing.name)
        if approved:
            at = {r.id: decided[r.id].decided_at for r in approved}
            if dry_run:
                _plan_listing(target, approved, ledger, report)
            else:
                _write_listing(target, approved, at, profile, ledger, report)
        elif sort_out(target, ledger)[0]:
            # An earlier delivery of ours whose photos have all been rejected since.
            report.withdrawn.append(listing.name)
            if dry_run:
                _plan_clearing(target, ledger, report)
            else:
                replaced = swap_out(target)
                aside = aside_folder(root, target.name)
                clear_folder(replaced, aside, ledger, report.clearing, was=target)
    return report


def listing_label(listing: Listing, manifest: Manifest) -> str:
    """The listing as the user knows it: its folder below the manifest (listings/12-oak-st),
    or its name when a ``listing:`` key gives it one."""
    parents = {f.path.parent for f in listing.folders}
    if len(parents) == 1 and (parent := parents.pop()).name == listing.name:
        return relative(parent, manifest.path.parent)
    return listing.name


def _listing_photos(listing: Listing, rows: list[PhotoRow]) -> list[PhotoRow]:
    """Exterior folders first, then the others, each in the manifest's order; photos by name."""
    rank = {spec.name: n for n, spec in enumerate(listing.folders)}
    mine = [r for r in rows if r.folder in rank]
    return sorted(mine, key=lambda r: (rank[r.folder], r.path))


def _file_name(n: int, count: int, photo: PhotoRow) -> str:
    width = max(2, len(str(count)))
    return f"{n:0{width}d}-{_safe(Path(photo.path).stem)}.jpg"


def _write_listing(
    target: Path,
    photos: list[PhotoRow],
    approved_at: dict[int, str],
    profile: DeliveryProfile,
    ledger: Ledger,
    report: DeliveryReport,
) -> None:
    """Write the listing into a stage folder beside it, swap it in whole, then take apart the
    folder it replaced. Each file's content is recorded in the ledger before it is written,
    so a stage a kill left behind is recognised as ours."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f"{STAGE_PREFIX}{target.name}-{secrets.token_hex(4)}")
    stage.mkdir()  # with the user's umask, as the folder it becomes
    disclosure: list[dict[str, object]] = []
    for photo in photos:
        result = Path(photo.output_paths[0])
        try:
            jpeg = render_for_mls(result, profile, Path(photo.path))
        except PhotoError as exc:
            report.failed.append(str(exc))
            continue
        file_name = _file_name(len(disclosure) + 1, len(photos), photo)
        _write_recorded(stage / file_name, jpeg.data, target / file_name, ledger)
        disclosure.append(_disclosure_row(file_name, photo, result, jpeg, approved_at[photo.id]))
    if not disclosure:
        # Not one photo could be made: the listing's last delivery stays as it was.
        clear_folder(stage, aside_folder(target.parent, target.name), ledger, report.clearing)
        return
    data = _disclosure_bytes(disclosure)
    _write_recorded(stage / DISCLOSURE_NAME, data, target / DISCLOSURE_NAME, ledger)
    replaced = swap_in(stage, target)
    if replaced is not None:
        aside = aside_folder(target.parent, target.name)
        clear_folder(replaced, aside, ledger, report.clearing, was=target)
    report.delivered[str(target)] = len(disclosure)


def _write_recorded(path: Path, data: bytes, final: Path, ledger: Ledger) -> None:
    ledger.record_delivered([(hashlib.sha256(data).hexdigest(), str(final))])
    path.write_bytes(data)


def _plan_listing(
    target: Path, photos: list[PhotoRow], ledger: Ledger, report: DeliveryReport
) -> None:
    report.planned.append(f"would write {target}/: {len(photos)} photos and {DISCLOSURE_NAME}")
    for n, photo in enumerate(photos, 1):
        name = _file_name(n, len(photos), photo)
        report.planned.append(f"  {name}  from {photo.output_paths[0]} (original {photo.path})")
    report.delivered[str(target)] = len(photos)
    _plan_clearing(target, ledger, report)


def _plan_clearing(target: Path, ledger: Ledger, report: DeliveryReport) -> None:
    ours, others = sort_out(target, ledger)
    if ours:
        report.planned.append(
            f"would remove {len(ours)} files an earlier delivery wrote in {target}/"
        )
    aside = aside_folder(target.parent, target.name)
    for path in others:
        report.planned.append(f"would move {path} aside into {aside}/ (not written by aihd)")


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


def _disclosure_bytes(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, DISCLOSURE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _safe(name: str) -> str:
    """A file or folder name any MLS upload form and file system takes."""
    return _UNSAFE.sub("-", name).strip("-.") or "photo"
