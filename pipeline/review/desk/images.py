"""The desk's images: URLs of its own for each photo, and the files behind them, made on demand.

A URL names a photo by its ledger id, never a path: the desk serves only the original or the
result file the ledger names for a photo of its manifests, as a thumbnail or a screen-sized
view (thumbnails.py), kept in ``review/`` beside each manifest, where ``aihd review`` keeps its
thumbnails too.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.ledger import PhotoRow
from pipeline.manifest.loader import Manifest
from pipeline.review.thumbnails import LARGE_LONG_EDGE, THUMBNAIL_LONG_EDGE, Thumbnails

__all__ = ["SIDES", "SIZES", "DeskImages", "Renditions"]

SIDES = ("before", "after")
SIZES = {"thumb": THUMBNAIL_LONG_EDGE, "large": LARGE_LONG_EDGE}
_LARGE_QUALITY = 85
_VERSION = str.maketrans("", "", "-:.+T")  # 2026-12-02T08:39:37.859+00:00 -> digits
_MAKERS = 2  # threads making images: Pillow decodes without the GIL; the machine's cores


class DeskImages:
    """The sheet's images for the desk (sheet.Images), noting the files each photo names."""

    def __init__(self) -> None:
        # photo id -> (manifest number, original, result): what the image route may serve
        self.sources: dict[int, tuple[int, str, str | None]] = {}

    def note(self, manifest: int, row: PhotoRow) -> None:
        """Keep the files the ledger names for this photo."""
        result = row.output_paths[0] if row.output_paths else None
        self.sources[row.id] = (manifest, row.path, result)

    def _url(self, manifest: int, row: PhotoRow, side: str, size: str) -> str:
        self.note(manifest, row)
        # The photo's version: a new result (or file) is a new URL, so a browser may keep each.
        return f"photos/{row.id}/{side}/{size}?v={row.updated_at.translate(_VERSION)}"

    def thumb(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None:
        return self._url(manifest, row, side, "thumb")

    def full(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None:
        return self._url(manifest, row, side, "large")


class Renditions:
    """Thumbnails and screen-sized views of photos, made in threads, each once."""

    def __init__(self, manifests: tuple[Manifest, ...]) -> None:
        self._manifests = manifests
        self._pool = ThreadPoolExecutor(max_workers=_MAKERS, thread_name_prefix="aihd-desk-images")
        self._kept: dict[tuple[int, str], Thumbnails] = {}

    def _maker(self, manifest: int, size: str) -> Thumbnails:
        maker = self._kept.get((manifest, size))
        if maker is None:
            review = self._manifests[manifest].path.parent / "review"
            if size == "thumb":
                maker = Thumbnails(review / "thumbs")
            else:
                maker = Thumbnails(review / "large", SIZES[size], _LARGE_QUALITY)
            self._kept[manifest, size] = maker
        return maker

    async def file(self, manifest: int, source: Path, size: str) -> Path | None:
        """The image of ``source`` at ``size``; None when the source cannot be read."""
        maker = self._maker(manifest, size)
        loop = asyncio.get_running_loop()
        name = await loop.run_in_executor(self._pool, maker.of, source)
        return maker.folder / name if name is not None else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
