"""Finding photos in the manifest's folders, and checking each before anything is spent on it.

A photo is checked by its bytes, not its name: a regular file (a FIFO, device or socket named
like a photo is refused, never opened to wait on), at most 50 MB, not empty, readable, a JPEG,
PNG, WEBP or camera RAW by its magic bytes, and not visibly truncated (JPEG end marker, PNG
IEND chunk, WEBP RIFF length). Hashing streams the file, so a 50 MB photo never sits in memory.
These functions block: the runner calls them in a worker thread, away from the event loop, and
a ``threading.Event`` it sets when the run stops ends hashing within a chunk's read.
"""

from __future__ import annotations

__all__ = [
    "CheckedPhoto",
    "FileStat",
    "check",
    "check_batch",
    "folder_files",
    "list_and_check",
    "list_folder",
    "stat_file",
    "take_batch",
]

import fnmatch
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from pipeline.api import MAX_PHOTO_BYTES
from pipeline.errors import NotRegularFile, ScanStopped
from pipeline.files import kind_of, open_regular
from pipeline.ledger import KnownFile
from pipeline.manifest.loader import FolderSpec

_CHUNK = 1024 * 1024
_TIFF_RAW = (b"II*\x00", b"MM\x00*", b"IIRO", b"IIU\x00")  # DNG, NEF, ARW, CR2, ORF, RW2
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL = 1024  # cameras may pad a JPEG after its end marker


@dataclass(frozen=True, slots=True)
class FileStat:
    """A photo file as one stat saw it."""

    path: str
    size: int
    mtime_ns: int
    kind: str | None = None  # what it is, when it is not a regular file ("a FIFO ...")


@dataclass(frozen=True, slots=True)
class CheckedPhoto:
    """A file read once: its digest, or why it cannot be sent."""

    stat: FileStat
    sha256: str | None
    broken: str | None  # the reason, for the ledger and the user


def list_folder(
    folder: Path,
    patterns: Sequence[str],
    recursive: bool,
    *,
    exclude: Sequence[str] = (),
    claimed: Set[str] = frozenset(),
    through: Set[str] = frozenset(),
) -> Iterator[FileStat]:
    """Files in ``folder`` whose names match a pattern (any case), in a stable order.

    ``exclude``: globs (any case) of names or of paths below ``folder`` to leave out.
    ``claimed``: subfolders that belong to other manifest entries, skipped whole; ``through``:
    subfolders whose own files belong to another entry, but whose subfolders are still ours.
    """
    lowered = [p.lower() for p in patterns]
    excluded = [p.lower() for p in exclude]
    root = str(folder)
    dirs = [folder]
    while dirs:
        current = dirs.pop()
        own_files = str(current) not in through
        # Only matching names are kept, then sorted: a folder of 100,000 photos costs its
        # names, not 100,000 directory entries with their cached stat results.
        names: list[str] = []
        subdirs: list[str] = []
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # hidden files and our own temporary files
                    if entry.is_dir(follow_symlinks=False):
                        if recursive and entry.path not in claimed:
                            subdirs.append(entry.name)
                    elif own_files and any(
                        fnmatch.fnmatchcase(entry.name.lower(), p) for p in lowered
                    ):
                        names.append(entry.name)
        except OSError:
            continue
        names.sort()
        for name in names:
            path = os.path.join(current, name)
            if excluded and _excluded(path, root, excluded):
                continue
            yield stat_file(path)
        dirs.extend(Path(current, d) for d in sorted(subdirs, reverse=True))


def _excluded(path: str, root: str, excluded: Sequence[str]) -> bool:
    below = os.path.relpath(path, root).replace(os.sep, "/").lower()
    name = below.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(below, p) for p in excluded)


def check(stat: FileStat, stop: threading.Event | None = None) -> CheckedPhoto:
    """Hash and check one photo in a single streamed read (ScanStopped once ``stop`` is set)."""
    if stat.kind is not None:
        return CheckedPhoto(stat, None, f"it is {stat.kind}, not a regular file; left alone")
    if stat.size == 0:
        return CheckedPhoto(stat, None, "empty file (0 bytes)")
    if stat.size > MAX_PHOTO_BYTES:
        return CheckedPhoto(
            stat, None, f"{stat.size / 1e6:.1f} MB is over the API's 50 MB limit; downsize it"
        )
    digest = hashlib.sha256()
    try:
        # Opened without waiting, and refused unless regular: it may have been swapped for a
        # FIFO since its stat.
        with open_regular(stat.path, buffered=False) as f:
            head = f.read(_CHUNK)
            digest.update(head)
            tail = head[-_TAIL:]
            size = len(head)
            while chunk := f.read(_CHUNK):
                if stop is not None and stop.is_set():
                    raise ScanStopped
                digest.update(chunk)
                tail = (tail + chunk)[-_TAIL:]
                size += len(chunk)
    except NotRegularFile as exc:
        return CheckedPhoto(stat, None, f"{exc.strerror}; left alone")
    except OSError as exc:
        return CheckedPhoto(stat, None, f"cannot read: {exc.strerror or exc}")
    reason = _format_problem(head, tail, size)
    return CheckedPhoto(stat, None if reason else digest.hexdigest(), reason)


def _format_problem(head: bytes, tail: bytes, size: int) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return None if _JPEG_END in tail else "truncated JPEG (no end-of-image marker)"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if _PNG_END in tail else "truncated PNG (no IEND chunk)"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        declared = int.from_bytes(head[4:8], "little") + 8
        return None if size >= declared else "truncated WEBP (shorter than its RIFF header says)"
    if head.startswith(_TIFF_RAW) or head.startswith(b"FUJIFILMCCD-RAW"):
        return None  # camera RAW: the API lists DNG, ARW, RAF, NEF "etc."
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "HEIC is not among the API's formats (JPEG, PNG, WEBP, RAW); convert it to JPEG"
    return "not a JPEG, PNG, WEBP or RAW image (by its first bytes)"


_BATCH = 256  # photos hashed per trip to the worker thread


def list_and_check(
    folder: FolderSpec, cached: Mapping[str, tuple[int, int, str] | KnownFile]
) -> list[CheckedPhoto]:
    """A folder's photos, checked and hashed (stored hashes reused): blocking, for a thread."""
    return check_batch(_list(folder), cached)


def _list(folder: FolderSpec) -> list[FileStat]:
    return list(folder_files(folder))


def folder_files(folder: FolderSpec) -> Iterator[FileStat]:
    """The folder's photos: its own, not those of folders below with entries of their own."""
    return list_folder(
        folder.path,
        folder.patterns,
        folder.recursive,
        exclude=folder.exclude,
        claimed=folder.claimed,
        through=folder.through,
    )


def stat_file(path: str) -> FileStat:
    try:
        st = os.stat(path)
    except OSError:
        return FileStat(path, -1, 0)  # vanished or unreadable: check() says which
    return FileStat(path, st.st_size, st.st_mtime_ns, kind_of(st.st_mode))


def take_batch(files: Iterator[FileStat]) -> list[FileStat]:
    return list(islice(files, _BATCH))


def check_batch(
    batch: list[FileStat],
    cached: Mapping[str, tuple[int, int, str] | KnownFile],
    stop: threading.Event | None = None,
) -> list[CheckedPhoto]:
    """Hash what changed; trust the stored hash when size and mtime are unchanged (and it is
    still a regular file). ScanStopped once ``stop`` is set."""
    out = []
    for st in batch:
        known = cached.get(st.path)
        if (
            st.kind is None
            and known is not None
            and known[0] == st.size
            and known[1] == st.mtime_ns
        ):
            out.append(CheckedPhoto(st, known[2], None))
        else:
            if stop is not None and stop.is_set():
                raise ScanStopped
            out.append(check(st, stop))
    return out
