"""Delivery profiles: what an MLS accepts (size, weight, shape, metadata) and what it asks of
AI-altered photos (a watermark, a caption, the original beside it, a line in the remarks).

Six are built in, each with the rule it follows and where that rule is published; a manifest's
``delivery_profiles:`` adds others, each extending one (``extends:``; by default the built-in of
the same name, else ``mls-default``). The rules were read from public pages for issue 26: check
each before relying on it, as MLS rules change. Where a rule says nothing of a limit, the
profile keeps aihd's generic one (mls-default's) and says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import UsageError

__all__ = [
    "ASPECTS",
    "BUILT_IN",
    "CORNERS",
    "EXIF_CHOICES",
    "FILE_NAME_FIELDS",
    "MLS_DEFAULT",
    "ORIGINALS",
    "WATERMARKS",
    "DeliveryProfile",
    "extend",
    "find_profile",
    "profile_problem",
    "profiles_text",
]

Aspect = Literal["keep", "pad-4:3"]
Watermark = Literal["required", "forbidden", "optional"]
Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]
Originals = Literal["none", "before", "after"]
Exif = Literal["strip", "keep"]
ASPECTS: tuple[Aspect, ...] = ("keep", "pad-4:3")
WATERMARKS: tuple[Watermark, ...] = ("required", "forbidden", "optional")
CORNERS: tuple[Corner, ...] = ("bottom-right", "bottom-left", "top-right", "top-left")
ORIGINALS: tuple[Originals, ...] = ("none", "before", "after")
EXIF_CHOICES: tuple[Exif, ...] = ("strip", "keep")
FILE_NAME_FIELDS = ("order", "stem", "listing")


@dataclass(frozen=True, slots=True)
class DeliveryProfile:
    """How photos are written for upload; dimensions hold either way round (portrait too).

    A watermark, the description and the original's place concern altered photos only (an
    exempt edit needs no disclosure); an original is never watermarked.
    """

    name: str
    long_edge: int = 2048  # px, at most
    max_bytes: int = 10_000_000  # 10 MB
    min_width: int = 1024  # the longer side at least max(min_width, min_height) px,
    min_height: int = 768  # the shorter side at least min(min_width, min_height) px
    quality: int = 92  # the first JPEG quality tried; stepped down by 5 until the file fits
    min_quality: int = 60
    exif: Exif = "strip"  # keep: the camera and copyright only, never location (GPS)
    aspect: Aspect = "keep"  # pad-4:3: plain bars make every photo 4:3 landscape
    watermark: Watermark = "optional"  # optional: drawn when watermark_text is given
    watermark_text: str = ""
    watermark_corner: Corner = "bottom-right"
    description: str = "Digitally altered"  # an altered photo's caption (ShortDescription)
    remarks_prefix: str = ""  # remarks.txt, for a listing with an altered photo
    originals: Originals = "none"  # where an altered photo's original goes in the order
    max_photos: int = 0  # photos (originals placed included) per listing; 0: no limit
    file_name: str = "{order:02}-{stem}.jpg"  # fields: order, stem, listing
    extends: str = ""  # the profile this one was made from
    rule: str = ""  # the rule it follows, in a sentence
    source: str = ""  # where that rule is published

    @property
    def min_long(self) -> int:
        return max(self.min_width, self.min_height)

    @property
    def min_short(self) -> int:
        return min(self.min_width, self.min_height)

    @property
    def stamps(self) -> bool:
        """Whether altered photos get the watermark."""
        return self.watermark != "forbidden" and bool(self.watermark_text)

    def pixels(self) -> tuple[object, ...]:
        """What decides a photo's bytes (not its name, caption or place): equal pixels() and
        equal sources give equal files, so a re-delivery need not encode again."""
        return (
            self.long_edge, self.max_bytes, self.min_width, self.min_height, self.quality,
            self.min_quality, self.exif, self.aspect,
        )  # fmt: skip


MLS_DEFAULT = DeliveryProfile(
    name="mls-default",
    rule="aihd's generic limits (2048 px, 10 MB, at least 1024x768), a caption on altered "
    "photos and no text on any; no MLS's rule",
    source="-",
)

# Each built-in's rule and source, as read for issue 26. Sizes an MLS rule does not set are
# mls-default's.
BUILT_IN: dict[str, DeliveryProfile] = {
    p.name: p
    for p in (
        MLS_DEFAULT,
        # CRMLS Rules 11.5.2: an altered photo says "digitally enhanced / altered / virtually
        # staged" in its description, and the original is placed immediately before or after
        # it; no watermark is required.
        dataclasses.replace(
            MLS_DEFAULT,
            name="crmls",
            description="Digitally altered or virtually staged",
            originals="after",
            rule="Rule 11.5.2: altered photos say so in their description, the original "
            "immediately before or after; no watermark required",
            source="CRMLS Rules and Regulations, section 11.5.2 (crmls.org)",
        ),
        # Stellar MLS Rule 04.04: "Virtually staged" in the photo's description, public
        # remarks beginning "One or more photo(s) was virtually staged."; no text on images.
        dataclasses.replace(
            MLS_DEFAULT,
            name="stellar",
            description="Virtually staged or digitally altered",
            remarks_prefix="One or more photo(s) was virtually staged.",
            watermark="forbidden",
            rule="Rule 04.04: 'Virtually staged' in the description, remarks begin 'One or "
            "more photo(s) was virtually staged.'; no text on images",
            source="Stellar MLS Rules and Regulations, section 04.04 (stellarmls.com)",
        ),
        # SmartMLS: virtually staged photos carry a watermark; JPG under 20 MB, 1024x768 ideal,
        # up to 40 photos. 1024x768 for every shape needs bars: pad to 4:3.
        dataclasses.replace(
            MLS_DEFAULT,
            name="smartmls",
            long_edge=1024,
            max_bytes=19_900_000,  # "under 20 MB", with a margin
            aspect="pad-4:3",
            watermark="required",
            watermark_text="Virtually Staged",
            description="Virtually staged or digitally altered",
            max_photos=40,
            rule="Staged photos carry a watermark; JPG under 20 MB, 1024x768 ideal, up to 40 "
            "photos",
            source="SmartMLS photo and virtual staging rules (smartmls.com)",
        ),
        # California AB 723 (Business and Professions Code 10140.8, in force 2026-01-01): an
        # altered listing photo carries a conspicuous disclosure on or next to it and a link,
        # URL or QR code to the original; lighting, colour, crop and exposure edits are exempt.
        # On it: the watermark; next to it: the caption and the original right after it.
        dataclasses.replace(
            MLS_DEFAULT,
            name="california",
            watermark="required",
            watermark_text="Digitally altered",
            description="Digitally altered; the original follows",
            originals="after",
            rule="AB 723 (B&P Code 10140.8, from 2026-01-01): a conspicuous disclosure on or "
            "next to an altered photo and access to the original; exposure, colour, crop exempt",
            source="California AB 723 (2025), Business and Professions Code section 10140.8 "
            "(leginfo.legislature.ca.gov)",
        ),
        # RealTracs Rule 2.7: no text overlays, a before/after pair. MLS Now Rule 3.1: no
        # watermark, the primary photo an unaltered exterior. The original goes before its
        # altered photo: the cover (exteriors come first) is then never an altered photo.
        dataclasses.replace(
            MLS_DEFAULT,
            name="no-text",
            watermark="forbidden",
            originals="before",
            rule="RealTracs 2.7 / MLS Now 3.1 style: no text on photos, the original before "
            "each altered photo (so the cover is unaltered)",
            source="RealTracs Rules section 2.7 (realtracs.com); MLS Now Rules section 3.1 "
            "(mlsnow.com)",
        ),
    )
}


def extend(base: DeliveryProfile, name: str, changes: Mapping[str, object]) -> DeliveryProfile:
    """A profile made from ``base`` with ``changes`` (field names of DeliveryProfile)."""
    return dataclasses.replace(base, name=name, extends=base.name, **changes)  # type: ignore[arg-type]


def profile_problem(profile: DeliveryProfile) -> tuple[str, str] | None:
    """(key, what is wrong and how to fix it) for a profile no photo could meet, else None."""
    if profile.min_long > profile.long_edge:
        return "long_edge", (
            f"min_width/min_height ({profile.min_width}x{profile.min_height}) exceed long_edge "
            f"({profile.long_edge}): no photo could meet both; lower the minimum or raise "
            "long_edge"
        )
    if profile.min_quality > profile.quality:
        return "min_quality", (
            f"min_quality ({profile.min_quality}) is above quality ({profile.quality}): "
            "lower min_quality"
        )
    if profile.watermark == "required" and not profile.watermark_text:
        return "watermark", (
            "watermark: required needs the text to draw: add watermark_text (e.g. "
            "'Virtually Staged'), or make the watermark optional"
        )
    return _file_name_problem(profile.file_name)


def _file_name_problem(template: str) -> tuple[str, str] | None:
    fields = ", ".join(f"{{{f}}}" for f in FILE_NAME_FIELDS)
    try:
        sample = template.format(order=1, stem="kitchen", listing="12-oak-st")
    except (KeyError, IndexError, ValueError):
        return "file_name", (
            f"the template can use only {fields} (e.g. '{{order:02}}-{{stem}}.jpg'); a "
            "field it does not know, or a bad format, cannot name a photo"
        )
    if "{order" not in template:
        return "file_name", (
            "the template must hold {order} (e.g. '{order:02}-{stem}.jpg'): it keeps the "
            "photos in their order, and their names apart"
        )
    if (
        not sample.casefold().endswith((".jpg", ".jpeg"))
        or any(c in sample for c in "/\\")
        or sample.startswith(".")
    ):
        return "file_name", (
            "the template must make a file name ending in .jpg (no folders, not hidden), e.g. "
            "'{order:02}-{stem}.jpg'"
        )
    return None


def find_profile(name: str, manifest_profiles: Mapping[str, DeliveryProfile]) -> DeliveryProfile:
    """The manifest's profile of that name, else a built-in one; a UsageError lists them."""
    known = {**BUILT_IN, **manifest_profiles}
    if name not in known:
        raise UsageError(
            f"--profile {name}: no such delivery profile; known: {', '.join(sorted(known))} "
            "(see `aihd deliver --list-profiles`; add one under delivery_profiles: in the "
            "manifest)"
        )
    return known[name]


def profiles_text(
    built_in: Mapping[str, DeliveryProfile], mine: Mapping[str, DeliveryProfile], where: str
) -> str:
    """``--list-profiles``: each profile's settings, the rule it follows and its source."""
    blocks = [_profile_text(p, "built in") for name, p in built_in.items() if name not in mine]
    blocks += [_profile_text(p, f"{where}, extends {p.extends}") for p in mine.values()]
    note = (
        "The rules were read from public pages (issue 26): check each before relying on it; "
        "MLS rules change."
    )
    return "\n\n".join([*blocks, note])


def _profile_text(profile: DeliveryProfile, origin: str) -> str:
    mb = f"{profile.max_bytes / 1e6:g}"
    size = f"long edge {profile.long_edge} px, at most {mb} MB, at least "
    size += f"{profile.min_width}x{profile.min_height}, aspect {profile.aspect}"
    mark = f"watermark {profile.watermark}"
    if profile.stamps:
        mark += f" '{profile.watermark_text}' ({profile.watermark_corner})"
    count = profile.max_photos or "no limit"
    remarks = f"'{profile.remarks_prefix}'" if profile.remarks_prefix else "none"
    return "\n".join(
        [
            f"{profile.name}  ({origin})",
            f"  {size}; EXIF {profile.exif}; names {profile.file_name}",
            f"  altered photos: caption '{profile.description}'; {mark}; "
            f"originals {profile.originals}",
            f"  remarks prefix: {remarks}; photos per listing: {count}",
            f"  rule: {profile.rule or '-'}",
            f"  source: {profile.source or '-'}",
        ]
    )
