"""What a listing's delivery holds before anything is made: which photos, in which order, each
altered one with its original where the profile places it, and why each other photo of the
listing is left out. Pure: reads the ledger's rows, writes nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.api.tools import Described, describe
from pipeline.errors import UsageError
from pipeline.ledger import Decision, PhotoRow, Review, State
from pipeline.manifest.folders import relative
from pipeline.manifest.listings import Listing, natural_key
from pipeline.manifest.loader import Manifest
from pipeline.manifest.profiles import DeliveryProfile

__all__ = [
    "LeftOut",
    "ListingPlan",
    "Planned",
    "check_folders_apart",
    "file_name",
    "listing_label",
    "plan_listing",
    "safe_name",
    "select_listings",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Planned:
    """One approved photo to deliver, and whether its original goes beside it."""

    photo: PhotoRow
    words: Described
    with_original: bool

    @property
    def result(self) -> Path:
        return Path(self.photo.output_paths[0])

    @property
    def original(self) -> Path:
        return Path(self.photo.path)

    def files(self, profile: DeliveryProfile) -> list[tuple[str, Path]]:
        """(role, source) of each file it becomes, in the listing's order."""
        photo = [("photo", self.result)]
        if not self.with_original:
            return photo
        original = [("original", self.original)]
        return original + photo if profile.originals == "before" else photo + original


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A photo of the listing not delivered, and why (in a person's words)."""

    path: str  # as the manifest's folders name it
    why: str
    over_limit: bool = False  # the profile's photo limit: said even when not a dry run


@dataclass(slots=True)
class ListingPlan:
    listing: Listing
    label: str  # the listing as the user knows it (listings/12-oak-st)
    target: Path  # its delivery folder
    base: Path  # the manifest's folder: photos are named relative to it
    photos: list[Planned] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    undecided: int = 0
    completed: int = 0
    rejected: int = 0


def select_listings(
    manifest: Manifest, every: Sequence[Listing], patterns: Sequence[str]
) -> list[Listing]:
    """``--listing``: the listings whose name, folder (listings/12-oak-st) or delivery folder
    name matches one of the globs; a glob matching none is a UsageError naming them all."""
    if not patterns:
        return list(every)

    def names(listing: Listing) -> tuple[str, ...]:
        return listing.name, listing_label(listing, manifest), safe_name(listing.name)

    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for ls in every for n in names(ls)):
            known = ", ".join(listing_label(ls, manifest) for ls in every) or "none"
            raise UsageError(
                f"--listing {pattern}: no listing of {manifest.path.name} matches it; its "
                f"listings: {known}"
            )
    return [
        ls for ls in every if any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names(ls))
    ]


def check_folders_apart(manifest: Manifest, every: Sequence[Listing], root: Path) -> None:
    """UsageError (nothing written) when two of the manifest's listings would share a delivery
    folder: their names differ only in what a folder name cannot hold, or in case (which a
    Mac's or Windows' disk does not tell apart). The second would replace the first's.
    Also one listing made of folders under different parents that only share the parent's
    name (2025/12-oak-st/inside, 2026/12-oak-st/inside) with no ``listing:`` to say so: two
    houses' photos would be delivered as one."""
    seen: dict[str, Listing] = {}
    for listing in every:
        by_parent = {f.path.parent: f for f in listing.folders if not f.listing}
        if len(by_parent) > 1:
            one, other = sorted(by_parent.values(), key=lambda f: f.name)[:2]
            raise UsageError(
                f"{manifest.path}: folders {one.name} and {other.name} would both be delivered "
                f"to {root / safe_name(listing.name)}, as one listing named after the folder "
                "above each; give one of them a name of its own with `listing:` in the "
                f"manifest, or both `listing: {listing.name}` to deliver them as one"
            )
        folder = safe_name(listing.name)
        first = seen.setdefault(folder.casefold(), listing)
        if first is not listing:
            raise UsageError(
                f"{manifest.path}: listings {listing_label(first, manifest)} and "
                f"{listing_label(listing, manifest)} would both be delivered to "
                f"{root / safe_name(first.name)}; give one of them a name of its own with "
                "`listing:` on its folders in the manifest"
            )


def plan_listing(
    listing: Listing,
    manifest: Manifest,
    rows: Sequence[PhotoRow],
    reviews: Mapping[int, Review],
    profile: DeliveryProfile,
    spelled: Mapping[str, str],
    root: Path,
) -> ListingPlan:
    """The listing's approved photos in order (exterior folders first, then the others, each
    in the manifest's order; photos by name, numbers as numbers), and the rest with the
    reason each is left out."""
    rank = {spec.name: n for n, spec in enumerate(listing.folders)}
    mine = sorted(
        (r for r in rows if r.folder in rank), key=lambda r: (rank[r.folder], natural_key(r.path))
    )
    base = manifest.path.parent
    label = listing_label(listing, manifest)
    plan = ListingPlan(listing, label, root / safe_name(listing.name), base)
    for row in mine:
        shown = relative(Path(row.path), base)
        if row.state is not State.COMPLETED or not row.output_paths:
            why = f"not enhanced yet ({row.state.value})"
            if row.state is State.FAILED:
                why = f"failed ({row.error or 'no reason recorded'})"
            plan.left_out.append(LeftOut(shown, why))
            continue
        plan.completed += 1
        review = reviews.get(row.id)
        if review is None:
            plan.undecided += 1
            plan.left_out.append(LeftOut(shown, "not decided yet (approve or reject it)"))
        elif review.decision is not Decision.APPROVED:
            plan.rejected += 1
            plan.left_out.append(LeftOut(shown, "rejected"))
        else:
            enhancements = [spelled.get(e, e) for e in row.enhancements]
            words = describe(row.service, row.space, enhancements)
            placed = words.alters and profile.originals != "none"
            plan.photos.append(Planned(row, words, placed))
    return plan


def listing_label(listing: Listing, manifest: Manifest) -> str:
    """The listing as the user knows it: its folder below the manifest (listings/12-oak-st),
    or its name when a ``listing:`` key gives it one."""
    parents = {f.path.parent for f in listing.folders}
    if len(parents) == 1 and (parent := parents.pop()).name == listing.name:
        return relative(parent, manifest.path.parent)
    return listing.name


def file_name(profile: DeliveryProfile, order: int, photo: Path, listing: str, role: str) -> str:
    """A delivered file's name from the profile's template (checked when it was loaded)."""
    stem = safe_name(photo.stem) + ("-original" if role == "original" else "")
    return profile.file_name.format(order=order, stem=stem, listing=safe_name(listing))


def safe_name(name: str) -> str:
    """A file or folder name any MLS upload form and file system takes."""
    return _UNSAFE.sub("-", name).strip("-.") or "photo"
