"""One photo made ready for an MLS: upright sRGB JPEG, sized and weighed as a profile says.

The long edge is brought to at most ``long_edge`` (and the photo up to the profile's minimum,
either way round); the JPEG quality is stepped down by 5 until the file fits ``max_bytes``, and
only below ``min_quality`` is the photo made smaller, never under the minimum dimensions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.errors import PhotoError
from pipeline.files import open_regular
from pipeline.manifest.profiles import DeliveryProfile
from pipeline.review.imaging import SRGB_ICC, open_upright_rgb

__all__ = ["MlsJpeg", "render_for_mls"]

_ORIENTATION = 0x0112
_SHRINK = 0.85  # each step down in size when the lowest quality is still too heavy


@dataclass(frozen=True, slots=True)
class MlsJpeg:
    """The JPEG to write and what was done to get it."""

    data: bytes
    width: int
    height: int
    quality: int
    source_size: tuple[int, int]  # upright, before resizing


def render_for_mls(source: Path, profile: DeliveryProfile, original: Path | None) -> MlsJpeg:
    """``source`` as an MLS-ready JPEG; ``original`` lends its EXIF when the result has none."""
    image = open_upright_rgb(source)
    upright = image.size
    exif = _kept_exif(source, original) if profile.exif == "keep" else None
    size = _target_size(upright, profile, source)
    while True:
        sized = image if size == upright else image.resize(size, Image.Resampling.LANCZOS)
        for quality in range(profile.quality, profile.min_quality - 1, -5):
            data = _jpeg(sized, quality, exif)
            if len(data) <= profile.max_bytes:
                return MlsJpeg(data, size[0], size[1], quality, upright)
        smaller = (round(size[0] * _SHRINK), round(size[1] * _SHRINK))
        if max(smaller) < profile.min_long or min(smaller) < profile.min_short:
            raise PhotoError(
                source,
                f"cannot fit in {profile.max_bytes / 1e6:g} MB at quality {profile.min_quality} "
                f"even at its smallest allowed size; raise max_megabytes or lower min_quality "
                f"in profile {profile.name}",
            )
        size = smaller


def _target_size(size: tuple[int, int], profile: DeliveryProfile, source: Path) -> tuple[int, int]:
    """Down to the long edge, or up to the minimum; a shape that allows neither is refused."""
    width, height = size
    long_side, short_side = max(size), min(size)
    scale = min(1.0, profile.long_edge / long_side)
    if long_side * scale < profile.min_long or short_side * scale < profile.min_short:
        scale = max(profile.min_long / long_side, profile.min_short / short_side)
        target = (math.ceil(width * scale), math.ceil(height * scale))
    else:
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if max(target) > profile.long_edge:
        raise PhotoError(
            source,
            f"its shape ({width}x{height}) cannot meet both the minimum "
            f"{profile.min_long}x{profile.min_short} and the long edge {profile.long_edge} of "
            f"profile {profile.name}; crop it, or use a profile that allows it",
        )
    return target


def _kept_exif(source: Path, original: Path | None) -> bytes | None:
    """The result's EXIF (else the original's), upright: the pixels are already turned."""
    for path in (source, original):
        if path is None:
            continue
        try:
            with open_regular(path) as file, Image.open(file) as opened:
                exif = opened.getexif()
        except OSError:
            continue
        if len(exif):
            exif[_ORIENTATION] = 1
            return exif.tobytes()
    return None


def _jpeg(image: Image.Image, quality: int, exif: bytes | None) -> bytes:
    out = io.BytesIO()
    extra = {"exif": exif} if exif else {}
    image.save(
        out, "JPEG", quality=quality, optimize=True, progressive=True, icc_profile=SRGB_ICC, **extra
    )
    return out.getvalue()
