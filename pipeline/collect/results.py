"""Where result files go on disk, and how they get there without ever being half-written.

Every path stays inside the output folder (names come from the ledger, with anchors, ``.`` and
``..`` dropped); files are written as dot ``.part-`` temporaries, decoded, fsynced and renamed.

A name that is not UTF-8 is written as shown to people (``caf\\xe9.jpg``, see
``pipeline.filenames``). A path the disk cannot hold (a name over 255 bytes, a path over 4095:
a photo deep in a tree of long folder names) is shortened, never refused: a long name keeps
its start and gains ``~`` and 12 hex digits of a hash of the whole (so it stays unique, and the
same every collect), and folders too deep for the output become one such name below the
photo's manifest folder. Only an output folder too long to hold any result fails a photo, with
that reason.
"""

from __future__ import annotations

__all__ = [
    "MAX_RESULT_PIXELS",
    "PART_MARK",
    "commit_files",
    "copy_results",
    "decoded_extension",
    "derived_root",
    "ensure_inside",
    "part_name",
    "remove_leftovers",
    "safe_parts",
    "unlink_all",
]

import hashlib
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path, PurePosixPath

from PIL import Image

from pipeline.bootclock import boot_id
from pipeline.errors import ResultRejected, ResultTooBig
from pipeline.filenames import shown

PART_MARK = ".part-"
_STALE_SECONDS = 600.0  # a temporary of another boot or machine untouched this long is left over
# Decoding costs a few bytes per pixel whatever the file's size: a 300 KB PNG can ask for
# 13000 x 13000 px (500 MB as RGB). 8192 x 8192 (67 MP) holds a 61 MP camera's photo.
MAX_RESULT_PIXELS = 8192 * 8192
# Pillow's own guard only warns below twice its limit (89 MP), and goes on to decode: its
# warning is made an error, so Image.open refuses a bomb before any pixel is read.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}


# The longest stem of a result's name: room is left for "-<id>-<n>", "_<n>" and ".<ext>".
STEM_BYTES = 200
# A temporary's name: "." + this + "_<n>.part-" + pid, boot and 12 hex digits (under 40 more).
_TEMP_STEM_BYTES = 100
_TAG_CHARS = 1 + 12  # "~" and 12 hex digits


def part_name(base: str) -> str:
    """A temporary's name: hidden, marked, and naming its process (pid and boot), so another
    collect running at once never takes it for a leftover."""
    return f".{base}{PART_MARK}{os.getpid()}-{boot_id()[:8]}-{secrets.token_hex(6)}"


def remove_leftovers(output: Path) -> int:
    """Delete ``.part-`` temporaries a killed collect left under ``output``; returns the count.

    One whose process still runs on this boot is another collect's, at work: left alone.
    One of another boot (or machine, on a shared folder) counts as left over once it has not
    been written to for ``_STALE_SECONDS``."""
    removed = 0
    now = time.time()
    for directory, _dirs, names in os.walk(output):
        for name in names:
            if not name.startswith(".") or PART_MARK not in name:
                continue
            path = os.path.join(directory, name)
            with suppress(FileNotFoundError):
                if _in_use(name.rsplit(PART_MARK, 1)[1], path, now):
                    continue
                os.unlink(path)
                removed += 1
    return removed


def _in_use(mark: str, path: str, now: float) -> bool:
    parts = mark.split("-")
    if len(parts) != 3 or not parts[0].isdigit():
        return False  # an older aihd's temporary: only a killed collect leaves one
    pid, boot = int(parts[0]), parts[1]
    if boot != boot_id()[:8]:
        return now - os.stat(path).st_mtime < _STALE_SECONDS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def safe_parts(name: str) -> tuple[str, ...]:
    """A relative path's names with anchors, '.' and '..' dropped: it can only go down."""
    parts = PurePosixPath(os.path.normpath(name)).parts
    return tuple(p for p in parts if p not in ("/", ".", "..", ""))


def derived_root(photo: Path, folder: str) -> Path:
    """The nearest ancestor of the photo whose last names are the folder's names."""
    tail = safe_parts(folder)
    if tail:
        for ancestor in photo.parents:
            if ancestor.parts[-len(tail) :] == tail:
                return ancestor
    return photo.parent


def disk_limits(output: Path) -> tuple[int, int]:
    """(longest name, longest path) in bytes the output folder's file system takes."""
    try:
        name_max = os.pathconf(output, "PC_NAME_MAX")
        path_max = os.pathconf(output, "PC_PATH_MAX") - 1  # it counts the closing NUL
    except (OSError, ValueError):
        name_max, path_max = 255, 4095
    return name_max, path_max


def clipped(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes on disk, at a character's end."""
    data = os.fsencode(text)
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def _tag(whole: str) -> str:
    return "~" + hashlib.sha256(os.fsencode(whole)).hexdigest()[: _TAG_CHARS - 1]


def shortened(text: str, max_bytes: int) -> str:
    """``text``, or when over ``max_bytes``: its start and a tag of the whole (stable, unique)."""
    if len(os.fsencode(text)) <= max_bytes:
        return text
    return clipped(text, max_bytes - _TAG_CHARS) + _tag(text)


def result_stem(stem: str) -> str:
    """The stem of a photo's result names: its own (bytes that are not UTF-8 written \\xNN),
    or shortened (see the module docstring)."""
    return shortened(shown(stem), STEM_BYTES)


def temp_name(stem: str, suffix: str = "") -> str:
    """A temporary's name (``part_name``) for a result, whatever the length of ``stem``."""
    return part_name(clipped(stem, _TEMP_STEM_BYTES) + suffix)


def fitted_directory(directory: Path, output: Path) -> Path:
    """``directory`` (below ``output``), or a shortened one when the disk could not hold a
    result's path in it: each name over the limit shortened, then, still too deep, the
    folders below the first one replaced by one name. ResultRejected when even that fails."""
    name_max, path_max = disk_limits(output)
    below = [shown(part) for part in directory.relative_to(output).parts]
    parts = [shortened(part, name_max) for part in below]

    def fits(candidate: Path) -> bool:
        return len(os.fsencode(str(candidate))) + 1 + name_max <= path_max

    candidate = output.joinpath(*parts)
    if fits(candidate):
        return candidate
    if len(parts) > 1:
        deep = "/".join(below[1:])
        folded = output.joinpath(parts[0], clipped(below[-1], 60) + _tag(deep))
        if fits(folded):
            return folded
    raise ResultRejected(
        f"the output folder {output} is too long a path for results below it (the disk takes "
        f"{path_max} bytes): choose a shorter output folder (--output or output:)"
    )


def ensure_inside(path: Path, output: Path) -> None:
    if not path.resolve().is_relative_to(output):
        raise ResultRejected(f"refusing to write {path}: it is outside the output {output}")


def decoded_extension(path: Path) -> str:
    """Decode the whole image (not only its header) and name its extension by its format.

    The size comes first, from the header (``Image.open`` reads no pixels): an image over
    ``MAX_RESULT_PIXELS`` raises ``ResultTooBig`` and is never decoded.
    """
    try:
        with Image.open(path) as image:
            fmt = image.format or ""
            width, height = image.size
            if width * height > MAX_RESULT_PIXELS:
                raise ResultTooBig(
                    f"{width}x{height} pixels, over the limit of {MAX_RESULT_PIXELS:,} pixels: "
                    "not decoded (a decompression bomb, or a result no listing needs)"
                )
            image.verify()
        with Image.open(path) as image:
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ResultTooBig(f"over the limit of {MAX_RESULT_PIXELS:,} pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ResultRejected(str(exc) or type(exc).__name__) from exc
    return _EXTENSIONS.get(fmt, fmt.lower() if fmt.isalnum() else "img")


def commit_files(moves: Sequence[tuple[Path, Path]], directory: Path) -> None:
    """fsync each file, rename it into place, then fsync the folder so the renames last."""
    for temp, _final in moves:
        with temp.open("rb+") as stream:
            os.fsync(stream.fileno())
    for temp, final in moves:
        os.replace(temp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_results(sources: Sequence[Path], finals: Sequence[Path], directory: Path) -> int:
    """Copy an original's files to a duplicate's names, skipping those already there."""
    directory.mkdir(parents=True, exist_ok=True)
    moves = []
    for source, final in zip(sources, finals, strict=True):
        if not source.is_file():
            return 0  # the original's files were moved away: nothing sound to copy
        if final.is_file() and final.stat().st_size == source.stat().st_size:
            continue
        temp = directory / temp_name(final.name)
        shutil.copyfile(source, temp)
        moves.append((temp, final))
    try:
        commit_files(moves, directory)
    finally:
        unlink_all([temp for temp, _ in moves])
    return len(moves)


def unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        with suppress(FileNotFoundError):
            path.unlink()
