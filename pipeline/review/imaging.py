"""Any photo Pillow opens, made an upright 8-bit RGB image in sRGB: for thumbnails and delivery.

Photos come in every kind: EXIF-rotated, CMYK JPEGs, PNGs with alpha, 16-bit PNGs, palettes,
embedded colour profiles. Each is turned the one way an MLS and a browser show it correctly.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from pipeline.errors import PhotoError
from pipeline.files import open_regular

__all__ = ["SRGB_ICC", "open_upright_rgb", "upright_size"]

_SRGB = ImageCms.createProfile("sRGB")
# The header's creation date (bytes 24-35) is made fixed: littleCMS stamps the time of the
# call, which made the same photo encode to other bytes in another process (a re-delivery
# could not tell an unchanged photo by its bytes).
_ICC = ImageCms.ImageCmsProfile(_SRGB).tobytes()
_DATE = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
SRGB_ICC: bytes = _ICC[:24] + _DATE + _ICC[36:]
_WHITE = (255, 255, 255)


def open_upright_rgb(path: Path, at_least: int | None = None) -> Image.Image:
    """The photo at ``path``, EXIF orientation applied, as 8-bit RGB in sRGB. With
    ``at_least``, a JPEG may be decoded smaller, its long edge no shorter than that (much
    faster for a preview: the JPEG decoder scales by 1/2, 1/4 or 1/8 as it reads)."""
    try:
        # A photo's folder may hold a FIFO under its name by now: never waited on.
        with open_regular(path) as file, Image.open(file) as opened:
            if at_least is not None and max(opened.size) > at_least:
                scale = at_least / max(opened.size)
                wanted = (math.ceil(opened.width * scale), math.ceil(opened.height * scale))
                opened.draft(opened.mode, wanted)  # a no-op for any image but a JPEG
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            return _to_srgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(path, f"cannot read it as an image ({exc})") from None


_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def upright_size(path: Path) -> tuple[int, int]:
    """The photo's size as shown (EXIF orientation applied), from its header only."""
    try:
        with open_regular(path) as file, Image.open(file) as opened:
            width, height = opened.size
            turned = opened.getexif().get(0x0112) in _TURNED
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PhotoError(path, f"cannot read it as an image ({exc})") from None
    return (height, width) if turned else (width, height)


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)  # an MLS shows no transparency: on white
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    if icc and image.mode in ("RGB", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            converted = None  # a broken profile: fall back to Pillow's plain conversion
        if converted is not None:
            return converted
    return image.convert("RGB")  # Pillow reads Adobe's inverted CMYK JPEGs the right way up


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greys scaled to 8 bits (Pillow's convert would clip, not scale)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = image.convert("I")
        top = wide.getextrema()[1]
        peak = int(top) if isinstance(top, int | float) else 255
        high = 65535 if image.mode.startswith("I;16") else max(peak, 255)
        return wide.point(lambda v: v * (255 / high)).convert("L")
    if image.mode == "F":
        return image.convert("L")
    return image
