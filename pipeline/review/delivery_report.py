"""What ``aihd deliver`` did (or, in a dry run, would do), per listing and in all: files
written, encoded or copied unchanged, photos left out and why, folders cleared."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.filenames import shown
from pipeline.review.delivery_folder import Clearing
from pipeline.review.delivery_plan import LeftOut

__all__ = ["DeliveryReport", "ListingReport"]


@dataclass(slots=True)
class ListingReport:
    """One listing's delivery: what went in, how many files were encoded or copied unchanged,
    and which photos were left out and why."""

    listing: str  # as the user knows it
    folder: str
    photos: int = 0  # image files, placed originals included
    originals: int = 0
    altered: int = 0
    encoded: int = 0  # files made by encoding
    reused: int = 0  # files copied from the last delivery: nothing they come from changed
    left_out: list[LeftOut] = field(default_factory=list)


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
    listings: list[ListingReport] = field(default_factory=list)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def encoded(self) -> int:
        return sum(listing.encoded for listing in self.listings)

    @property
    def reused(self) -> int:
        return sum(listing.reused for listing in self.listings)

    def summary(self) -> dict[str, object]:
        """The report as plain JSON data (``aihd deliver --json``), names shown as export
        shows them (a byte that is not UTF-8 as ``\\xNN``)."""
        return {
            "folder": shown(str(self.folder)),
            "dry_run": self.dry_run,
            "encoded": self.encoded,
            "reused": self.reused,
            "listings": [
                {
                    "listing": shown(r.listing),
                    "folder": shown(r.folder),
                    "photos": r.photos,
                    "originals": r.originals,
                    "altered": r.altered,
                    "encoded": r.encoded,
                    "reused": r.reused,
                    "left_out": [{"photo": shown(o.path), "why": shown(o.why)} for o in r.left_out],
                }
                for r in self.listings
            ],
            "failed": [shown(line) for line in self.failed],
            "not_approved": self.not_approved,
            "undecided": [
                {"listing": shown(label), "undecided": n, "completed": of}
                for label, n, of in self.undecided
            ],
            "withdrawn": [shown(name) for name in self.withdrawn],
            "removed": [shown(str(p)) for p in self.clearing.removed],
            "moved_aside": [
                {"was": shown(str(a)), "now": shown(str(b))} for a, b in self.clearing.moved
            ],
        }
