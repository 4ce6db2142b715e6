"""The v3 emulator's results: v1's gentle enhancement, plus a visible mark of the tool used.

Day to dusk tints the photo towards a dusk sky, item removal smooths it, the tools that
furnish a room draw a piece of "furniture": a demo shows which tool ran, and a test can tell
them apart. The other tools give the enhanced photo.
"""

from __future__ import annotations

__all__ = [
    "DUSK_BOTTOM",
    "DUSK_STRENGTH",
    "DUSK_TOP",
    "SOFA",
    "THUMBNAIL_SIZE",
    "tool_result",
    "write_result",
]

import io
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, UnidentifiedImageError

from .enhance import PLACEHOLDER_GREY, PLACEHOLDER_SIZE, enhance

THUMBNAIL_SIZE = (256, 256)
DUSK_TOP = (35, 35, 110)  # deep blue-violet sky
DUSK_BOTTOM = (230, 120, 50)  # warm horizon glow
DUSK_STRENGTH = 0.5
SOFA = (120, 80, 50)
_REMOVING = frozenset({"tool-item-removal", "tool-item-removal-mask"})
_FURNISHING = frozenset(
    {
        "tool-virtual-staging",
        "tool-virtual-restaging",
        "tool-interior-design",
        "tool-furniture-restyle",
        "tool-under-construction",
    }
)


def _dusk(photo: Image.Image) -> Image.Image:
    width, height = photo.size
    gradient = Image.new("RGB", (1, height))
    for y in range(height):
        share = y / max(height - 1, 1)
        gradient.putpixel(
            (0, y),
            tuple(round(t + (b - t) * share) for t, b in zip(DUSK_TOP, DUSK_BOTTOM, strict=True)),
        )
    sky = gradient.resize((width, height))
    darker = photo.point(lambda value: round(value * 0.6))
    return Image.blend(darker, sky, DUSK_STRENGTH)


def _staged(photo: Image.Image) -> Image.Image:
    staged = photo.copy()
    width, height = staged.size
    box = (width // 4, height * 3 // 5, width * 3 // 4, height * 9 // 10)
    ImageDraw.Draw(staged).rectangle(box, fill=SOFA)
    return staged


def tool_result(photo: Image.Image, tool: str) -> Image.Image:
    """The result of one tool on a photo."""
    enhanced = enhance(photo)
    if tool == "tool-day-to-dusk":
        return _dusk(enhanced)
    if tool in _REMOVING:
        return enhanced.filter(ImageFilter.MedianFilter(5))
    if tool in _FURNISHING:
        return _staged(enhanced)
    return enhanced


def write_result(stored: bytes | Path, tool: str, result_path: Path, thumbnail: bool) -> None:
    """Write the tool's JPEG result (or its thumbnail) of a stored photo atomically."""
    try:
        with Image.open(io.BytesIO(stored) if isinstance(stored, bytes) else stored) as photo:
            result = tool_result(photo, tool)
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,  # an error when warnings are errors (the test suite)
    ):
        result = Image.new("RGB", PLACEHOLDER_SIZE, PLACEHOLDER_GREY)
    if thumbnail:
        result.thumbnail(THUMBNAIL_SIZE)
    fd, temp_name = tempfile.mkstemp(dir=result_path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            result.save(out, "JPEG", quality=90)
        os.replace(temp_name, result_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
