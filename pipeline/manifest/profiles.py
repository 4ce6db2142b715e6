"""Delivery profiles: what an MLS accepts (size, weight, dimensions, metadata).

``mls-default`` is built in; a manifest's ``delivery_profiles:`` adds others (or replaces it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import UsageError

__all__ = ["MLS_DEFAULT", "DeliveryProfile", "find_profile"]


@dataclass(frozen=True, slots=True)
class DeliveryProfile:
    """How photos are written for upload; dimensions hold either way round (portrait too)."""

    name: str
    long_edge: int = 2048  # px, at most
    max_bytes: int = 10_000_000  # 10 MB
    min_width: int = 1024  # the longer side at least max(min_width, min_height) px,
    min_height: int = 768  # the shorter side at least min(min_width, min_height) px
    quality: int = 92  # the first JPEG quality tried; stepped down by 5 until the file fits
    min_quality: int = 60
    exif: Literal["strip", "keep"] = "strip"

    @property
    def min_long(self) -> int:
        return max(self.min_width, self.min_height)

    @property
    def min_short(self) -> int:
        return min(self.min_width, self.min_height)


MLS_DEFAULT = DeliveryProfile(name="mls-default")


def find_profile(name: str, manifest_profiles: Mapping[str, DeliveryProfile]) -> DeliveryProfile:
    """The manifest's profile of that name, else a built-in one; a UsageError lists them."""
    known = {MLS_DEFAULT.name: MLS_DEFAULT, **manifest_profiles}
    if name not in known:
        raise UsageError(
            f"--profile {name}: no such delivery profile; known: {', '.join(sorted(known))} "
            "(add one under delivery_profiles: in the manifest)"
        )
    return known[name]
