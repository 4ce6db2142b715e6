"""When a photo is complete enough to take: never half-written, never a partial name.

A photographer's upload, a sync client or a copy over the network writes a photo over seconds
or minutes, and a name alone does not say when it is done. A file is taken when either:

- its folder has been **quiet** for ``quiet_seconds`` (no change the watcher saw) and two
  **looks** at the folder, ``gap`` apart, found its size and mtime the same (the second look
  at the end of the quiet period); a file that changed between the looks is looked at again
  (a writer the watcher cannot see, on a network mount), or
- a ``.done`` marker in its directory was written after it (an uploader that says so).

Partial names are never taken: ``*.part``, ``*.tmp``, ``~*``, ``.*``, ``*.!sync``,
``*.crdownload``. A start, a rescan and SIGHUP count as a change in every folder: nothing is
known of a folder before it has been watched for a quiet period.

The bookkeeping is pure and clocked by the caller; ``look`` (blocking, for a worker thread)
is the only part that reads the disk.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pipeline.manifest.loader import FolderSpec
from pipeline.ordering.scan import FileStat, folder_files

__all__ = ["DONE_MARKER", "PARTIAL_NAMES", "Completeness", "FolderLook", "is_partial", "look"]

PARTIAL_NAMES = ("*.part", "*.tmp", "~*", ".*", "*.!sync", "*.crdownload")
DONE_MARKER = ".done"
MAX_GAP_SECONDS = 1.0

Stat = tuple[int, int]  # size, mtime_ns


def is_partial(name: str) -> bool:
    """A name a writer gives a file it has not finished (any case)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in PARTIAL_NAMES)


@dataclass(frozen=True, slots=True)
class FolderLook:
    """One look at a folder: each candidate photo's size and mtime, and its directory's
    ``.done`` marker mtime (None: no marker)."""

    files: Mapping[str, FileStat]
    markers: Mapping[str, int | None]


def look(folder: FolderSpec) -> FolderLook:
    """List the folder's photos as a run would (patterns, exclude, recursion), partial names
    left out, with the marker of each directory they are in. Blocking."""
    files = {
        st.path: st
        for st in folder_files(folder)
        if st.size >= 0 and not is_partial(os.path.basename(st.path))
    }
    markers: dict[str, int | None] = {}
    for path in files:
        directory = os.path.dirname(path)
        if directory not in markers:
            try:
                markers[directory] = os.stat(os.path.join(directory, DONE_MARKER)).st_mtime_ns
            except OSError:
                markers[directory] = None
    return FolderLook(files, markers)


@dataclass(slots=True)
class _Folder:
    changed_at: float  # the last change seen (monotonic)
    due_at: float | None  # when to look next; None: nothing to do until a change
    last: dict[str, Stat] | None = None  # the previous look since the change
    last_at: float = 0.0
    taken: dict[str, Stat] = field(default_factory=dict)  # handed on, as they were then


class Completeness:
    """Which folders to look at when, and which of their files are complete at a look."""

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet = quiet_seconds
        self.gap = min(MAX_GAP_SECONDS, quiet_seconds / 2)
        self._folders: dict[str, _Folder] = {}

    def changed(
        self, names: Iterable[str], now: float | None = None, *, again: bool = False
    ) -> None:
        """A change in these folders (a watcher event, a start, a rescan). ``again``: hand on
        every complete file once more, not only new ones (a rescan: the ledger decides)."""
        now = time.monotonic() if now is None else now
        first_look = now + max(0.0, self.quiet - self.gap)
        for name in names:
            folder = self._folders.get(name)
            if folder is None:
                self._folders[name] = _Folder(changed_at=now, due_at=first_look)
                continue
            folder.changed_at, folder.due_at, folder.last = now, first_look, None
            if again:
                folder.taken.clear()

    def forget(self, names: Iterable[str]) -> None:
        """Folders no longer in the manifests."""
        for name in names:
            self._folders.pop(name, None)

    def next_due(self) -> float | None:
        """The earliest time a folder is due for a look; None: none is."""
        dues = [f.due_at for f in self._folders.values() if f.due_at is not None]
        return min(dues, default=None)

    def due(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        return [n for n, f in self._folders.items() if f.due_at is not None and f.due_at <= now]

    def complete(self, name: str, seen: FolderLook, now: float | None = None) -> list[FileStat]:
        """The files of this look that are complete and not handed on yet; schedules the
        folder's next look (if it still needs one)."""
        now = time.monotonic() if now is None else now
        folder = self._folders.get(name)
        if folder is None:
            return []
        stats = {path: (st.size, st.mtime_ns) for path, st in seen.files.items()}
        quiet = now - folder.changed_at >= self.quiet - 1e-6
        last = folder.last if folder.last_at >= folder.changed_at else None
        ready: list[FileStat] = []
        waiting = False
        for path, st in seen.files.items():
            stat = stats[path]
            if folder.taken.get(path) == stat:
                continue
            marker = seen.markers.get(os.path.dirname(path))
            steady = quiet and last is not None and last.get(path) == stat
            if steady or (marker is not None and marker >= st.mtime_ns):
                ready.append(st)
                folder.taken[path] = stat
            else:
                waiting = True
        for gone in set(folder.taken) - set(stats):
            del folder.taken[gone]
        folder.last, folder.last_at = stats, now
        if waiting:
            # Quiet by the watcher but not by the looks (an unseen writer), or the first look:
            # look again when the quiet period ends, and at least a gap later.
            folder.due_at = max(folder.changed_at + self.quiet, now + self.gap)
        else:
            folder.due_at = None
        return ready
