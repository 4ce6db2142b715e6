"""Review thumbnails, made once: a file's name is a hash of its source's path, size and mtime.

A 2,000-photo review page must open fast, so the page shows small JPEGs, never the full photos;
writing the page again reuses every thumbnail whose source has not changed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.errors import PhotoError
from pipeline.review.imaging import open_upright_rgb

__all__ = ["THUMBNAIL_LONG_EDGE", "Thumbnails"]

THUMBNAIL_LONG_EDGE = 640  # px: sharp in a card about 480 px wide on a 1.5x screen
_QUALITY = 78


class Thumbnails:
    """Thumbnails in ``folder``; ``made`` counts the ones this instance had to create."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
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
            image = open_upright_rgb(source)
        except PhotoError:
            return None
        image.thumbnail((THUMBNAIL_LONG_EDGE, THUMBNAIL_LONG_EDGE))
        partial = self.folder / f".{name}.{os.getpid()}.tmp"
        image.save(partial, "JPEG", quality=_QUALITY, optimize=True)
        os.replace(partial, target)  # a killed run leaves no half thumbnail under its real name
        self.made += 1
        return name
