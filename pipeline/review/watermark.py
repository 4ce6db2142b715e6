"""A profile's watermark on an altered photo: its words in a box of contrasting colour in one
corner, drawn with Pillow's own font (no font file to ship).

The box is solid, dark on a light corner and light on a dark one, so the words read on any
photo (AB 723 asks for a conspicuous disclosure) and a test can find them by their pixels.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont, ImageStat

__all__ = ["stamp", "watermark_box"]

_TEXT_SHARE = 0.045  # the text's height, as a share of the photo's shorter side
_MAX_WIDTH_SHARE = 0.6  # the box never wider than this share of the photo
_MIN_TEXT_PX = 8
_DARK, _LIGHT = (24, 24, 24), (245, 245, 245)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(image_size: tuple[int, int], text: str) -> tuple[int, tuple[int, int, int, int]]:
    """The text's size in px, and its bounding box at that size, for a photo this big."""
    width, height = image_size
    size = max(_MIN_TEXT_PX, round(min(width, height) * _TEXT_SHARE))
    while True:
        left, top, right, bottom = (int(v) for v in _font(size).getbbox(text))
        if size == _MIN_TEXT_PX or right - left <= width * _MAX_WIDTH_SHARE:
            return size, (left, top, right, bottom)
        size = max(_MIN_TEXT_PX, round(size * 0.85))


def watermark_box(image_size: tuple[int, int], text: str, corner: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the watermark's box on a photo of ``image_size``."""
    width, height = image_size
    size, (left, top, right, bottom) = _fit(image_size, text)
    pad, margin = max(2, round(size * 0.4)), max(1, round(size * 0.6))
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = margin if corner.endswith("left") else width - margin - box_w
    y = margin if corner.startswith("top") else height - margin - box_h
    return max(0, x), max(0, y), min(width, x + box_w), min(height, y + box_h)


def stamp(image: Image.Image, text: str, corner: str) -> None:
    """Draw ``text`` in its box in ``corner`` of ``image`` (RGB), in place."""
    box = watermark_box(image.size, text, corner)
    mean = ImageStat.Stat(image.crop(box).convert("L")).mean[0]
    back, ink = (_DARK, _LIGHT) if mean >= 128 else (_LIGHT, _DARK)
    size, (left, top, _right, _bottom) = _fit(image.size, text)
    pad = max(2, round(size * 0.4))
    draw = ImageDraw.Draw(image)
    draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=back)
    draw.text((box[0] + pad - left, box[1] + pad - top), text, fill=ink, font=_font(size))
