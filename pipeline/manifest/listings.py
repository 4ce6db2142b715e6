"""Listings: which manifest folders make up one listing, and which of them are exteriors.

A listing is what an MLS shows as one property: by default the folder above each manifest folder
(``listings/12-oak-st/inside`` and ``.../outside`` are listing ``12-oak-st``); a folder's
``listing:`` key names it outright. Exteriors (space ``outdoor``, or a catalog space whose name
holds "outdoor") come first: an MLS shows a listing's first photo as its cover.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.manifest.loader import FolderSpec, Manifest

__all__ = ["Listing", "is_exterior", "listing_name", "listings"]


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
