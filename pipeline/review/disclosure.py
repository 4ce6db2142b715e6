"""A listing's disclosure: ``disclosure.csv`` in the shape of RESO's Media resource, one row
per delivered photo saying in words what AI altered (from the tool table), and ``remarks.txt``
with the profile's remarks prefix when a photo of the listing is altered.

Names only: a delivered file's name, its original's name in the same delivery; never a local
path (the file travels to an MLS, and a path says whose disk it came from).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Literal

from pipeline.api.tools import EXEMPT_EDITS, Described
from pipeline.manifest.profiles import DeliveryProfile

__all__ = [
    "DISCLOSURE_COLUMNS",
    "DISCLOSURE_NAME",
    "REMARKS_NAME",
    "Disclosed",
    "disclosure_bytes",
    "remarks_bytes",
]

DISCLOSURE_NAME = "disclosure.csv"
REMARKS_NAME = "remarks.txt"
# RESO Media's names where it has one; OriginalFile and Altered are aihd's.
DISCLOSURE_COLUMNS = (
    "Order",
    "File",
    "MediaCategory",
    "ShortDescription",
    "LongDescription",
    "ImageWidth",
    "ImageHeight",
    "MimeType",
    "OriginalFile",
    "Altered",
)
_LONG_MAX = 1024  # RESO's LongDescription length
_EDIT = {item.value: item.label for item in EXEMPT_EDITS}
Role = Literal["photo", "original"]


@dataclass(frozen=True, slots=True)
class Disclosed:
    """One delivered file, as its row says it."""

    order: int
    file: str
    role: Role
    words: Described
    width: int
    height: int
    source_size: tuple[int, int]  # upright, before resizing
    original_file: str = ""  # an altered photo's original in this delivery
    of_file: str = ""  # an original's altered photo


def disclosure_bytes(rows: list[Disclosed], profile: DeliveryProfile) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DISCLOSURE_COLUMNS)
    for row in rows:
        altered = row.role == "photo" and row.words.alters
        writer.writerow(
            (
                row.order,
                row.file,
                "Photo",
                _short(row, profile, altered),
                _long(row, profile, altered)[:_LONG_MAX],
                row.width,
                row.height,
                "image/jpeg",
                row.original_file,
                "true" if altered else "false",
            )
        )
    return out.getvalue().encode("utf-8")


def remarks_bytes(rows: list[Disclosed], profile: DeliveryProfile) -> bytes | None:
    """The remarks prefix, when the profile has one and a photo of the listing is altered
    (Stellar's sentence would be untrue of a listing with none)."""
    if not profile.remarks_prefix or not any(r.role == "photo" and r.words.alters for r in rows):
        return None
    return (profile.remarks_prefix + "\n").encode("utf-8")


def _short(row: Disclosed, profile: DeliveryProfile, altered: bool) -> str:
    if row.role == "original":
        return "Original photo, unaltered"
    return profile.description if altered else ""


def _long(row: Disclosed, profile: DeliveryProfile, altered: bool) -> str:
    edits = _exempt_words(row, profile)
    if row.role == "original":
        done = f"; {edits}" if edits else ""
        return f"The unaltered original of {row.of_file}, before any AI change{done}."
    tool = f"AI HomeDesign {row.words.tool}"
    exempt = [*row.words.exempt, *([edits] if edits else [])]
    if not altered:
        return f"Exempt edits only ({tool}): {'; '.join(exempt) or 'none'}."
    text = f"{profile.description}. What AI changed: {'; '.join(row.words.altered)} ({tool})."
    if exempt:
        text += f" Exempt edits: {'; '.join(exempt)}."
    if row.original_file:
        text += f" Original: {row.original_file}."
    return text


def _exempt_words(row: Disclosed, profile: DeliveryProfile) -> str:
    """aihd's own edits for the MLS, in the table's words."""
    width, height = row.source_size
    words = []
    if profile.aspect == "pad-4:3" and width * 3 != height * 4:
        words.append(_EDIT["pad-to-4-3"].casefold())
    if (row.width, row.height) != row.source_size and (
        profile.aspect == "keep" or _content_scaled(row)
    ):
        words.append(f"{_EDIT['resize'].casefold()} from {width}x{height}")
    return ", ".join(words)


def _content_scaled(row: Disclosed) -> bool:
    """On a 4:3 canvas the photo is scaled unless it was already that wide or tall."""
    width, height = row.source_size
    return not (row.width == width or row.height == height)
