"""Watching the manifests' folders: which folders changed, as the file system tells it.

``watchfiles`` (Rust ``notify``): inotify on a local disk, or polling every ``poll_seconds``
for network mounts, where another machine's writes raise no inotify event. Roots are watched
recursively: each folder of the manifests, and the fixed start of each glob entry (where a new
listing folder appears). A change is only a hint; completeness.py decides what is complete,
and the service's rescan is the safety net for changes a watcher missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import watchfiles

from pipeline.manifest.folders import is_pattern, split_pattern
from pipeline.manifest.loader import Manifest

__all__ = ["FolderMap", "watch"]

log = logging.getLogger("aihd")
STEP_MS = 50  # changes are handed on this long after the last one of a burst
DEBOUNCE_MS = 400  # and at the latest this long after the first


class FolderMap:
    """The watched roots, and which folders (by key) a changed path belongs to."""

    def __init__(self, folders: Sequence[tuple[str, str, bool]], pattern_roots: Sequence[str]):
        self.folders = tuple(folders)  # (key, folder path, recursive)
        self.pattern_roots = tuple(sorted(set(pattern_roots)))  # where new folders may match
        self.roots = tuple(
            Path(r) for r in _outermost([p for _, p, _ in folders] + [*pattern_roots])
        )
        self._by_path: dict[str, list[tuple[str, bool]]] = {}
        self._above: set[str] = set()  # folders above the manifests' folders
        for key, folder, recursive in self.folders:
            self._by_path.setdefault(folder, []).append((key, recursive))
            parent = os.path.dirname(folder)
            while parent not in self._above and parent != os.path.dirname(parent):
                self._above.add(parent)
                parent = os.path.dirname(parent)

    @classmethod
    def of(cls, manifests: Iterable[tuple[str, Manifest]]) -> FolderMap:
        """``manifests``: (prefix, manifest); a folder's key is ``prefix + its name``."""
        folders: list[tuple[str, str, bool]] = []
        pattern_roots: list[str] = []
        for prefix, manifest in manifests:
            base = manifest.path.parent
            folders += [(prefix + f.name, str(f.path), f.recursive) for f in manifest.folders]
            for written, _, _ in manifest.matches:
                if is_pattern(written):
                    literal, _ = split_pattern(written)
                    pattern_roots.append(os.path.normpath(base / Path(literal).expanduser()))
        return cls(folders, pattern_roots)

    def owners(self, path: str) -> list[str]:
        """The keys of the folders a changed path concerns: the folder itself, the folder it
        is in (or a recursive one above it), or every folder below it (a folder moved in)."""
        found = []
        here, child = path, True
        while True:
            for key, recursive in self._by_path.get(here, ()):
                if here == path or recursive or child:
                    found.append(key)
            parent = os.path.dirname(here)
            if parent == here:
                break
            here, child = parent, here == path
        if path in self._above:
            prefix = path.rstrip(os.sep) + os.sep
            found += [key for key, folder, _ in self.folders if folder.startswith(prefix)]
        return found

    def under_pattern_root(self, path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in self.pattern_roots)


def _outermost(paths: Sequence[str]) -> list[str]:
    """The paths that exist, without those inside another (watched recursively anyway)."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if kept and (path == kept[-1] or path.startswith(kept[-1].rstrip(os.sep) + os.sep)):
            continue
        if os.path.isdir(path):
            kept.append(path)
    return kept


async def watch(
    roots: Sequence[Path], stop: asyncio.Event, *, poll_seconds: float | None
) -> AsyncIterator[set[str]]:
    """The paths that changed, a burst at a time, until ``stop`` is set."""
    if not roots:
        await stop.wait()
        return
    async for changes in watchfiles.awatch(
        *roots,
        watch_filter=None,  # every name: completeness.py decides what a partial one is
        stop_event=stop,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=1000,  # a stop is seen within a second even in a silent folder
        force_polling=poll_seconds is not None,
        poll_delay_ms=round((poll_seconds or 0.3) * 1000),
        recursive=True,
        ignore_permission_denied=True,
    ):
        yield {path for _, path in changes}
