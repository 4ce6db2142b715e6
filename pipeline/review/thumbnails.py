"""Review thumbnails, made once: a file's name is a hash of its source's path, size and mtime.

A 2,000-photo review page must open fast, so the page shows small JPEGs, never the full photos;
writing the page again reuses every thumbnail whose source has not changed. The desk's full-size
view uses the same, at a screen's size (``LARGE_LONG_EDGE``): a 24-megapixel original would be
slow to send and to decode, and some (HEIC, 16-bit PNG, CMYK) a browser cannot show as they are.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from pipeline.errors import PhotoError
from pipeline.review.imaging import open_upright_rgb

__all__ = ["LARGE_LONG_EDGE", "THUMBNAIL_LONG_EDGE", "Thumbnails"]

THUMBNAIL_LONG_EDGE = 640  # px: sharp in a card about 480 px wide on a 1.5x screen
LARGE_LONG_EDGE = 2048  # px: a full-screen view on a common monitor, before/after side by side
_QUALITY = 78


class Thumbnails:
    """Thumbnails in ``folder``; ``made`` counts the ones this instance had to create."""

    def __init__(
        self, folder: Path, long_edge: int = THUMBNAIL_LONG_EDGE, quality: int = _QUALITY
    ) -> None:
        self.folder = folder
        self.long_edge = long_edge
        self.quality = quality
        self.made = 0
        folder.mkdir(parents=True, exist_ok=True)

    def of(self, source: Path) -> str | None:
        """The thumbnail's file name in the folder, or None where the source cannot be read."""
        try:
            st = source.stat()
        except OSError:
            return None
        key = os.fsencode(source) + f"\x1f{st.st_size}\x1f{st.st_mtime_ns}".encode()
        name = hashlib.sha256(key).hexdigest()[:24] + ".jpg"
        target = self.folder / name
        if target.exists():
            return name
        try:
            image = open_upright_rgb(source, at_least=self.long_edge)
        except PhotoError:
            return None
        image.thumbnail((self.long_edge, self.long_edge))
        # Unique per thread too: the desk makes thumbnails in several threads at once.
        partial = self.folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        image.save(partial, "JPEG", quality=self.quality, optimize=True)
        os.replace(partial, target)  # a killed run leaves no half thumbnail under its real name
        self.made += 1
        return name
