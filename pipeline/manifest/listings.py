"""Listings: which manifest folders make up one listing, and which of them are exteriors.

A listing is what an MLS shows as one property: by default the folder above each manifest folder
(``listings/12-oak-st/inside`` and ``.../outside`` are listing ``12-oak-st``); a folder's
``listing:`` key names it outright. Exteriors (space ``outdoor``, or a catalog space whose name
holds "outdoor") come first: an MLS shows a listing's first photo as its cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.manifest.loader import FolderSpec, Manifest

__all__ = ["Listing", "is_exterior", "listing_name", "listings", "natural_key"]

_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class Listing:
    """One listing's folders, exteriors first, each group in the manifest's order."""

    name: str
    folders: tuple[FolderSpec, ...]


def is_exterior(folder: FolderSpec) -> bool:
    return "outdoor" in folder.space.casefold()


def listing_name(folder: FolderSpec) -> str:
    return folder.listing or folder.path.parent.name or folder.name


def listings(manifest: Manifest) -> list[Listing]:
    """The manifest's listings in the order their first folder is written."""
    grouped: dict[str, list[FolderSpec]] = {}
    for folder in manifest.folders:
        grouped.setdefault(listing_name(folder), []).append(folder)
    return [
        Listing(name, tuple(sorted(folders, key=lambda f: not is_exterior(f))))
        for name, folders in grouped.items()
    ]


def natural_key(text: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    """Sort key that reads numbers as numbers, as a person does: ``5-walnut-way`` before
    ``48-maple-ave``, ``img-2.jpg`` before ``img-10.jpg``; case aside (the text breaks ties)."""
    parts = tuple(
        (0, int(part), "") if odd else (1, 0, part.casefold())  # split() puts numbers at odd places
        for odd, part in ((n % 2 == 1, part) for n, part in enumerate(_DIGITS.split(text)))
        if part
    )
    return parts, text
