"""Where a manifest's paths really are: resolved once, checked once, errors at file:line.

Loading 10,000 folders resolves 10,000 paths: ``os.path`` on text, with the folders above
resolved once per load, costs a fraction of ``Path.resolve()``. A symbolic link loop or a name
too long for the system is a one-line ``ManifestError``, never a traceback. Also here: the rule
that results never go into, over or beside the photos in a photo folder.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ManifestError
from pipeline.manifest.folders import Written, shorten, split_pattern
from pipeline.manifest.safe_yaml import KeyPath, LineMap, dotted_key

__all__ = [
    "absolute",
    "clear_cache",
    "is_",
    "line_of",
    "output_conflict",
    "photo_roots",
    "resolve",
    "resolve_match",
]


def line_of(lines: LineMap, where: KeyPath) -> int:
    """The line of a key path, or of its closest written parent (for a missing key)."""
    while where not in lines:
        where = where[:-1]
    return lines[where]


def photo_roots(
    entries: list[Written], base: Path, path: Path, lines: LineMap
) -> tuple[tuple[Path, int, int], ...]:
    """Every folder a pattern or path matched, and each pattern's literal start: with the
    index and line of its entry."""
    roots: list[tuple[Path, int, int]] = []
    for entry in entries:
        roots += [(folder, entry.index, entry.line) for folder in entry.matched]
        if entry.pattern:
            literal, _ = split_pattern(entry.path)
            key: KeyPath = ("folders", entry.index, "path")
            roots.append((absolute(literal, base, path, lines, key), entry.index, entry.line))
    return tuple(roots)


def output_conflict(
    output: Path, roots: tuple[tuple[Path, int, int], ...]
) -> tuple[str, int] | None:
    """Why results in ``output`` would land among the originals (and the entry's line)."""
    out = str(output)
    for root, index, line in roots:
        text = str(root)
        if text == out or out.startswith(text.rstrip(os.sep) + os.sep):
            how = "is" if text == out else "lies inside"
        elif text.startswith(out.rstrip(os.sep) + os.sep):
            how = "contains"
        else:
            continue
        return (
            f"the output folder {shorten(output)} {how} the photo folder {shorten(root)} "
            f"(folders[{index}], line {line}): results would overwrite the originals or be "
            "ordered again as photos. Choose an output folder outside every photo folder, "
            "e.g. output: ../enhanced",
            line,
        )
    return None


def resolve_match(folder: Path, path: Path, line: int, key: str) -> Path:
    """The real path of a folder a pattern matched."""
    try:
        return Path(_realpath(str(folder)))
    except (OSError, RuntimeError) as exc:
        raise ManifestError(
            f"cannot use the folder {shorten(folder)}: {why(exc)}", path=path, line=line, key=key
        ) from None


def is_(check: Callable[[], bool]) -> bool:
    """A Path check that is False for a name the system cannot look up (too long, a loop)."""
    try:
        return check()
    except OSError:
        return False


def why(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "it is a loop of symbolic links; point the manifest at the real folder"
    if getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        return "the path is too long for this system; shorten it"
    return str(getattr(exc, "strerror", None) or exc)


def absolute(written: str, base: Path, path: Path, lines: LineMap, where: KeyPath) -> Path:
    """A path as written in the manifest, made absolute against the manifest's folder."""
    return resolve(written, base, path, lines, where)[0]


def resolve(
    written: str, base: Path, path: Path, lines: LineMap, where: KeyPath
) -> tuple[Path, os.stat_result | None]:
    """The real path of what is written, and its stat (None if it does not exist)."""
    real = base
    try:
        real = Path(_realpath(os.path.join(base, os.path.expanduser(written))))
        # A name too long, or a loop, says so here, not later in a run.
        return real, os.stat(real)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
            return real, None
        raise ManifestError(
            f"cannot use {shorten(written)}: {why(exc)}",
            path=path,
            line=line_of(lines, where),
            key=dotted_key(where),
        ) from None


def _realpath(text: str) -> str:
    """os.path.realpath, with the folders above shared between entries looked up once."""
    parent, name = os.path.split(text)
    parts = text.split(os.sep)
    if not name or ".." in parts or "." in parts or len(parts) > 64:
        return os.path.realpath(text)
    candidate = os.path.join(_real_folder(parent), name)
    return os.path.realpath(candidate) if os.path.islink(candidate) else candidate


@functools.lru_cache(maxsize=65536)
def _real_folder(folder: str) -> str:
    # Cached within a load only: load_manifest clears it, as folders may move between loads.
    return _realpath(folder) if os.path.dirname(folder) != folder else folder


def clear_cache() -> None:
    """Forget resolved folders: a folder may move between two loads."""
    _real_folder.cache_clear()
