"""Where ``aihd deliver`` may write, and how it replaces a listing's folder without ever
deleting a file it did not write.

The delivery folder may not be, contain or lie inside a photo folder (of this manifest, or of
any manifest whose photos the account's ledger holds) or a folder of results: a listing's
folder is swapped in whole, and what it replaces is taken apart. There, only a file whose
content the ledger records as written by deliver is deleted; anything else (a user's note,
a photo edited by hand, a link) is moved aside into ``<listing>.moved-aside-<time>/`` and
named in a warning.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError, UsageError
from pipeline.filenames import shell_quoted
from pipeline.files import open_regular
from pipeline.ledger import Ledger
from pipeline.manifest.folders import shorten
from pipeline.manifest.loader import Manifest, load_manifest

__all__ = [
    "Clearing",
    "aside_folder",
    "clear_folder",
    "our_files",
    "refuse_output",
    "sort_out",
    "stale_folders",
    "swap_in",
    "swap_out",
]

STAGE_PREFIX = ".aihd-deliver-"  # a listing being written, swapped in when complete
REPLACED_PREFIX = ".aihd-replaced-"  # the folder a swap took out, being taken apart
_READ_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Forbidden:
    """A folder deliver must keep out of, and why it is one."""

    path: Path
    what: str  # "the photo folder" / "the results folder"
    whose: str  # the manifest it belongs to, for the message


def refuse_output(
    output: Path, manifest: Manifest, ledger: Ledger, results: Iterable[Path], where: str
) -> None:
    """UsageError (exit 2, nothing written) when ``output`` is, contains or lies inside a
    photo folder of the account's manifests, or a folder of results deliver reads."""
    for forbidden in _forbidden(manifest, ledger, results):
        how = _overlap(output, forbidden.path)
        if how is None:
            continue
        suggestion = manifest.path.parent / "delivery"
        fix = "Choose a folder outside every photo folder"
        if all(_overlap(suggestion, f.path) is None for f in _forbidden(manifest, ledger, ())):
            fix += f", e.g. `aihd deliver {_quoted(manifest.path)} -o {_quoted(suggestion)}`"
        raise UsageError(
            f"{where} {shorten(output)}: the delivery folder {how} {forbidden.what} "
            f"{shorten(forbidden.path)} ({forbidden.whose}): a delivery replaces each listing's "
            f"folder whole, and must never touch photos or results; nothing was written. {fix}"
        )


def _forbidden(manifest: Manifest, ledger: Ledger, results: Iterable[Path]) -> list[Forbidden]:
    name = f"of {manifest.path.name}"
    found = [Forbidden(root, "the photo folder", name) for root, _, _ in manifest.photo_roots]
    found += [Forbidden(f.path, "the photo folder", name) for f in manifest.folders]
    found += [Forbidden(manifest.output, "the results folder", name)]
    found += [Forbidden(Path(p).parent, "the results folder", name) for p in results]
    others: set[str] = set()
    for other, folder, directory in ledger.photo_folders():
        root = _folder_root(Path(directory), folder)
        found.append(Forbidden(root, "the photo folder", f"recorded in ledger {ledger.path}"))
        if other and other != str(manifest.path):
            others.add(other)
    for other in sorted(others):
        found += _their_folders(Path(other))
    return found


def _their_folders(path: Path) -> list[Forbidden]:
    """Another manifest's photo and results folders, as it stands now (gone or broken: none;
    its photos' folders are in the ledger all the same)."""
    try:
        other = load_manifest(path)
    except (PipelineError, OSError):
        return []
    name = f"of {path.name}"
    found = [Forbidden(root, "the photo folder", name) for root, _, _ in other.photo_roots]
    return [*found, Forbidden(other.output, "the results folder", name)]


def _folder_root(directory: Path, folder: str) -> Path:
    """The nearest folder at or above ``directory`` whose last names are the folder's name."""
    tail = tuple(p for p in Path(folder).parts if p not in ("/", ".", ".."))
    for candidate in (directory, *directory.parents):
        if tail and candidate.parts[-len(tail) :] == tail:
            return candidate
    return directory


def _overlap(output: Path, folder: Path) -> str | None:
    if output == folder:
        return "is"
    if output.is_relative_to(folder):
        return "lies inside"
    if folder.is_relative_to(output):
        return "contains"
    return None


def _quoted(path: Path) -> str:
    return shell_quoted(str(path))


# -- taking a folder apart ------------------------------------------------------------------


@dataclass(slots=True)
class Clearing:
    """What taking folders apart did (or, in a dry run, would do)."""

    removed: list[Path] = field(default_factory=list)  # files deliver wrote
    moved: list[tuple[Path, Path]] = field(default_factory=list)  # (was, is now)


def sort_out(folder: Path, ledger: Ledger) -> tuple[list[Path], list[Path]]:
    """(files deliver wrote, everything else) in ``folder``; links and odd files are never
    deliver's. A folder that is a link, or a file, is itself everything else."""
    if folder.is_symlink() or not folder.is_dir():
        return [], [folder] if folder.is_symlink() or folder.exists() else []
    files: list[Path] = []
    others: list[Path] = []
    for directory, dirs, names in os.walk(folder):
        base = Path(directory)
        for name in list(dirs):
            if (base / name).is_symlink():
                others.append(base / name)  # never walked into: its files are not ours
                dirs.remove(name)
        for name in names:
            path = base / name
            (files if path.is_file() and not path.is_symlink() else others).append(path)
    hashes = {path: _sha256(path) for path in files}
    known = ledger.delivered([h for h in hashes.values() if h])
    ours = [p for p, h in hashes.items() if h and h in known]
    return ours, others + [p for p in files if p not in set(ours)]


def our_files(folder: Path, ledger: Ledger) -> dict[str, Path]:
    """The files deliver wrote in ``folder`` (not below it), by content: sha256 -> path."""
    if folder.is_symlink() or not folder.is_dir():
        return {}
    files = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    hashes = {_sha256(path): path for path in files}
    hashes.pop("", None)
    known = ledger.delivered(list(hashes))
    return {sha: path for sha, path in hashes.items() if sha in known}


def clear_folder(
    folder: Path, aside: Path, ledger: Ledger, clearing: Clearing, *, was: Path | None = None
) -> None:
    """Delete the files deliver wrote in ``folder``, move the rest into ``aside`` (same
    relative place), then remove the folders left empty. ``was``: where the user knew the
    folder (a swap renamed it), for the messages."""
    shown = was or folder
    if folder.is_symlink() or not folder.is_dir():
        clearing.moved.append((shown, _move(folder, aside / shown.name)))
        return
    ours, others = sort_out(folder, ledger)
    for path in others:
        below = path.relative_to(folder)
        clearing.moved.append((shown / below, _move(path, aside / below)))
    for path in ours:
        path.unlink()
        clearing.removed.append(shown / path.relative_to(folder))
    for directory, _dirs, _names in os.walk(folder, topdown=False):
        try:
            os.rmdir(directory)
        except OSError:
            # Something appeared meanwhile (another program writing): never deleted; moved.
            if Path(directory) == folder:
                clearing.moved.append((shown, _move(folder, aside / shown.name)))


def swap_in(stage: Path, target: Path) -> Path | None:
    """Put the complete ``stage`` in ``target``'s place; returns where the folder it replaced
    went (to be taken apart), None if there was none."""
    replaced = swap_out(target) if target.exists() or target.is_symlink() else None
    os.rename(stage, target)
    return replaced


def swap_out(target: Path) -> Path:
    """Take ``target`` out of its place at once (a rename), to be taken apart."""
    replaced = target.with_name(f"{REPLACED_PREFIX}{target.name}-{secrets.token_hex(4)}")
    os.rename(target, replaced)
    return replaced


def stale_folders(root: Path) -> list[Path]:
    """Folders a killed delivery left in ``root``: a stage never swapped in, a replaced
    folder never taken apart."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith((STAGE_PREFIX, REPLACED_PREFIX)))


def aside_folder(root: Path, listing: str) -> Path:
    return root / f"{listing}.moved-aside-{time.strftime('%Y%m%d-%H%M%S')}"


def _move(path: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    final, n = destination, 1
    while final.exists() or final.is_symlink():
        n += 1
        final = destination.with_name(f"{destination.name}.{n}")
    os.rename(path, final)
    return final


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open_regular(path) as stream:  # a FIFO put here is moved aside, never waited on
            while chunk := stream.read(_READ_BYTES):
                digest.update(chunk)
    except OSError:
        return ""  # unreadable: not provably ours, so moved aside
    return digest.hexdigest()
