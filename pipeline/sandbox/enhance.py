"""The local emulator's enhancement: a real, gentle edit of the uploaded photo with Pillow."""

from __future__ import annotations

__all__ = [
    "PLACEHOLDER_GREY",
    "PLACEHOLDER_SIZE",
    "WHITE_BALANCE_STRENGTH",
    "enhance",
    "write_enhanced",
]

import io
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

# Photos Pillow cannot read (RAW, broken files) still get a result, like a service that
# accepted the upload would send; a flat grey frame makes that visible.
PLACEHOLDER_SIZE = (64, 48)
PLACEHOLDER_GREY = (128, 128, 128)
WHITE_BALANCE_STRENGTH = 0.6


def enhance(photo: Image.Image) -> Image.Image:
    """Auto-contrast, grey-world white balance, then a gentle unsharp mask."""
    rgb = ImageOps.exif_transpose(photo).convert("RGB")
    rgb = ImageOps.autocontrast(rgb, cutoff=1)
    means = ImageStat.Stat(rgb).mean
    grey = sum(means) / 3
    # Grey world, gently: move each channel's mean part of the way to the common grey, so a
    # cast goes but warm walls stay warm; clamp so a near-black channel is not blown out.
    gains = [
        1 + WHITE_BALANCE_STRENGTH * (min(grey / mean, 2.0) - 1) if mean > 1 else 1.0
        for mean in means
    ]
    channels = [
        band.point(lambda value, gain=gain: min(255, round(value * gain)))
        for band, gain in zip(rgb.split(), gains, strict=True)
    ]
    balanced = Image.merge("RGB", channels)
    return balanced.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=3))


def write_enhanced(stored: bytes | Path, result_path: Path) -> None:
    """Write the enhanced JPEG of a stored photo (bytes or file) atomically to result_path."""
    try:
        with Image.open(io.BytesIO(stored) if isinstance(stored, bytes) else stored) as photo:
            result = enhance(photo)
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,  # an error when warnings are errors (the test suite)
    ):
        result = Image.new("RGB", PLACEHOLDER_SIZE, PLACEHOLDER_GREY)
    fd, temp_name = tempfile.mkstemp(dir=result_path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            result.save(out, "JPEG", quality=90)
        os.replace(temp_name, result_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
