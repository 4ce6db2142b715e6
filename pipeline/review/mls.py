"""One photo made ready for an MLS: upright sRGB JPEG, shaped, sized and weighed as a profile
says, with the profile's watermark when asked.

The long edge is brought to at most ``long_edge`` (and the photo up to the profile's minimum,
either way round); with ``aspect: pad-4:3`` the photo is first laid on a 4:3 landscape canvas
of plain bars. The JPEG quality is stepped down by 5 until the file fits ``max_bytes``, and only
below ``min_quality`` is the photo made smaller, never under the minimum dimensions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image

from pipeline.errors import PhotoError
from pipeline.files import open_regular
from pipeline.manifest.profiles import DeliveryProfile
from pipeline.review.imaging import SRGB_ICC, open_upright_rgb, upright_size
from pipeline.review.watermark import stamp

__all__ = ["ENCODER", "MlsJpeg", "check_shape", "render_for_mls"]

# Part of what a delivered file was made from: a change here (or in Pillow) makes a
# re-delivery encode again rather than reuse a file this code would now write otherwise.
ENCODER = f"mls-2/pillow-{PIL.__version__}"

_ORIENTATION = 0x0112
# exif: keep keeps who made the photo and with what; never where (GPS), nor anything else.
_KEPT_TAGS = (0x010F, 0x0110, 0x013B, 0x8298)  # Make, Model, Artist, Copyright
_SHRINK = 0.85  # each step down in size when the lowest quality is still too heavy
_BARS = (255, 255, 255)  # pad-4:3's plain bars, as transparency is shown (imaging.py)


@dataclass(frozen=True, slots=True)
class MlsJpeg:
    """The JPEG to write and what was done to get it."""

    data: bytes
    width: int
    height: int
    quality: int
    source_size: tuple[int, int]  # upright, before resizing
    resized: bool = False  # the photo's own pixels scaled
    padded: bool = False  # laid on 4:3 plain bars
    stamped: bool = False  # the watermark drawn


@dataclass(frozen=True, slots=True)
class _Layout:
    canvas: tuple[int, int]  # the JPEG's size
    content: tuple[int, int]  # the photo's size on it (the canvas's unless padded)

    def smaller(self) -> _Layout:
        def shrink(size: tuple[int, int]) -> tuple[int, int]:
            return max(1, round(size[0] * _SHRINK)), max(1, round(size[1] * _SHRINK))

        return _Layout(shrink(self.canvas), shrink(self.content))


def render_for_mls(
    source: Path, profile: DeliveryProfile, original: Path | None, *, stamped: bool = False
) -> MlsJpeg:
    """``source`` as an MLS-ready JPEG; ``original`` lends its EXIF when the result has none.
    ``stamped``: draw the profile's watermark (the caller knows whether the photo is altered)."""
    image = open_upright_rgb(source)
    upright = image.size
    exif = _kept_exif(source, original) if profile.exif == "keep" else None
    layout = _layout(upright, profile, source)
    padded = layout.canvas != layout.content
    while True:
        composed = _compose(image, layout)
        if stamped:
            stamp(composed, profile.watermark_text, profile.watermark_corner)
        for quality in range(profile.quality, profile.min_quality - 1, -5):
            data = _jpeg(composed, quality, exif)
            if len(data) <= profile.max_bytes:
                width, height = layout.canvas
                resized = layout.content != upright
                return MlsJpeg(data, width, height, quality, upright, resized, padded, stamped)
        layout = layout.smaller()
        if max(layout.canvas) < profile.min_long or min(layout.canvas) < profile.min_short:
            raise PhotoError(
                source,
                f"cannot fit in {profile.max_bytes / 1e6:g} MB at quality {profile.min_quality} "
                f"even at its smallest allowed size; raise max_megabytes or lower min_quality "
                f"in profile {profile.name}",
            )


def check_shape(source: Path, profile: DeliveryProfile) -> None:
    """PhotoError when no size the profile allows fits the photo's shape (its header only)."""
    _layout(upright_size(source), profile, source)


def _layout(size: tuple[int, int], profile: DeliveryProfile, source: Path) -> _Layout:
    width, height = size
    if profile.aspect == "keep":
        target = _target_size((width, height), profile, source)
        return _Layout(target, target)
    # Pad to 4:3 landscape: the canvas is the smallest 4:3 shape holding the photo.
    shape = (max(width, height * 4 / 3), max(height, width * 3 / 4))
    canvas = _target_size(shape, profile, source)
    scale = canvas[0] / shape[0]
    content = (
        min(canvas[0], max(1, round(width * scale))),
        min(canvas[1], max(1, round(height * scale))),
    )
    return _Layout(canvas, content)


def _target_size(
    size: tuple[float, float], profile: DeliveryProfile, source: Path
) -> tuple[int, int]:
    """Down to the long edge, or up to the minimum; a shape that allows neither is refused."""
    width, height = size
    long_side, short_side = max(size), min(size)
    scale = min(1.0, profile.long_edge / long_side)
    if long_side * scale < profile.min_long or short_side * scale < profile.min_short:
        scale = max(profile.min_long / long_side, profile.min_short / short_side)
        target = (math.ceil(width * scale - 1e-9), math.ceil(height * scale - 1e-9))
    else:
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if max(target) > profile.long_edge:
        raise PhotoError(
            source,
            f"its shape ({round(width)}x{round(height)}) cannot meet both the minimum "
            f"{profile.min_long}x{profile.min_short} and the long edge {profile.long_edge} of "
            f"profile {profile.name}; crop it, or use a profile with aspect: pad-4:3",
        )
    return target


def _compose(image: Image.Image, layout: _Layout) -> Image.Image:
    content = (
        image
        if image.size == layout.content
        else image.resize(layout.content, Image.Resampling.LANCZOS)
    )
    if layout.content == layout.canvas:
        return content.copy() if content is image else content
    canvas = Image.new("RGB", layout.canvas, _BARS)
    left = (layout.canvas[0] - layout.content[0]) // 2
    top = (layout.canvas[1] - layout.content[1]) // 2
    canvas.paste(content, (left, top))
    return canvas


def _kept_exif(source: Path, original: Path | None) -> bytes | None:
    """The camera and copyright of the result's EXIF (else the original's), upright: the
    pixels are already turned. Location and everything else is dropped."""
    for path in (source, original):
        if path is None:
            continue
        try:
            with open_regular(path) as file, Image.open(file) as opened:
                exif = opened.getexif()
        except OSError:
            continue
        kept = Image.Exif()
        for tag in _KEPT_TAGS:
            if tag in exif:
                kept[tag] = exif[tag]
        if len(kept):
            kept[_ORIENTATION] = 1
            return kept.tobytes()
    return None


def _jpeg(image: Image.Image, quality: int, exif: bytes | None) -> bytes:
    out = io.BytesIO()
    extra = {"exif": exif} if exif else {}
    image.save(
        out, "JPEG", quality=quality, optimize=True, progressive=True, icc_profile=SRGB_ICC, **extra
    )
    return out.getvalue()
