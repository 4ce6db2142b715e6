"""From the manifest's folder entries to the folders a run scans, each photo in exactly one.

An entry's ``path`` is a folder or a glob of folders (``listings/*/inside``,
``listings/**/exterior``), matched each time the manifest is loaded. Several entries may match
one folder, and a recursive entry covers the folders below it: a folder's options are those of
the nearest recursive folder above it (or the defaults), overridden by the keys of the entries
that match it, in manifest order (most specific last). A recursive folder's walk skips every
folder that has entries of its own, so a photo is found once, with one set of options, and is
paid for once.
"""

from __future__ import annotations

__all__ = [
    "GLOB_CHARS",
    "Options",
    "Owned",
    "Written",
    "assign",
    "expand",
    "folder_matches",
    "is_pattern",
    "relative",
    "shorten",
    "split_pattern",
]

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GLOB_CHARS = frozenset("*?[")
_NAME_SHOWN = 120  # longer paths are shortened in messages: the line stays one line


@dataclass(slots=True)
class Options:
    """A folder's options as merged so far, with the line each was written on."""

    space: str
    space_line: int
    enhancements: tuple[str, ...]
    enhancements_line: int
    recursive: bool
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    tools: tuple[tuple[str, str, int], ...] = ()  # (key, value, line): tool, room, style


@dataclass(slots=True)
class Written:
    """The keys one entry wrote (None: left to what it overrides), and where."""

    index: int
    line: int
    path: str
    pattern: bool
    space: str | None
    space_line: int
    enhancements: tuple[str, ...] | None
    enhancements_line: int
    recursive: bool | None
    patterns: tuple[str, ...] | None
    exclude: tuple[str, ...] | None
    matched: list[Path] = field(default_factory=list)
    tools: tuple[tuple[str, str, int], ...] = ()  # (key, value, line) written here

    def apply(self, options: Options) -> Options:
        return Options(
            space=self.space if self.space is not None else options.space,
            space_line=self.space_line if self.space is not None else options.space_line,
            enhancements=(
                self.enhancements if self.enhancements is not None else options.enhancements
            ),
            enhancements_line=(
                self.enhancements_line
                if self.enhancements is not None
                else options.enhancements_line
            ),
            recursive=self.recursive if self.recursive is not None else options.recursive,
            patterns=self.patterns if self.patterns is not None else options.patterns,
            exclude=self.exclude if self.exclude is not None else options.exclude,
            tools=_merge(options.tools, self.tools),
        )


def _merge(
    below: tuple[tuple[str, str, int], ...], over: tuple[tuple[str, str, int], ...]
) -> tuple[tuple[str, str, int], ...]:
    if not over:
        return below
    merged = {key: (key, value, line) for key, value, line in below}
    merged.update({key: (key, value, line) for key, value, line in over})
    return tuple(merged.values())


@dataclass(frozen=True, slots=True)
class Owned:
    """One folder to scan: its options, its name, and the folders below it that are not its."""

    path: Path
    name: str
    line: int
    options: Options
    claimed: frozenset[str]  # below it, with entries of their own: skipped whole
    through: frozenset[str]  # below it, with entries of their own but not recursive: files
    # skipped, subfolders still ours


def folder_matches(name: str, patterns: Sequence[str]) -> bool:
    """``--folder``: a folder name matches a glob, or lies below a folder a pattern names.

    No patterns: every folder.
    """
    return not patterns or any(
        fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip("/") + "/") for p in patterns
    )


def shorten(path: Path | str) -> str:
    """A path for a one-line message: long ones keep their start and end."""
    text = str(path)
    if len(text) <= _NAME_SHOWN:
        return text
    return f"{text[:50]}...{text[-60:]}"


def is_pattern(written: str) -> bool:
    return not GLOB_CHARS.isdisjoint(written)


def split_pattern(written: str) -> tuple[str, list[str]]:
    """The literal folder before the first glob part, and the parts from there on."""
    parts = Path(written).expanduser().parts
    for n, part in enumerate(parts):
        if is_pattern(part):
            return str(Path(*parts[:n])) if n else ".", list(parts[n:])
    return written, []


def expand(root: Path, parts: Sequence[str]) -> list[Path]:
    """The folders under ``root`` matching the glob ``parts`` (``**``: any depth), sorted.

    Wildcards never follow a symbolic link nor enter hidden folders, so a link loop cannot
    make this walk forever.
    """
    found: set[Path] = set()
    _match(root, tuple(parts), found)
    return sorted(found)


def _match(folder: Path, parts: tuple[str, ...], found: set[Path]) -> None:
    if not parts:
        found.add(folder)
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        _match(folder, rest, found)
        for sub in _subfolders(folder):
            _match(sub, parts, found)
    elif is_pattern(head):
        for sub in _subfolders(folder):
            if fnmatch.fnmatchcase(sub.name, head):
                _match(sub, rest, found)
    else:
        literal = folder / head
        try:
            if literal.is_dir():
                _match(literal, rest, found)
        except OSError:
            return  # a name too long, a loop: it matches nothing


def _subfolders(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as entries:
            subs = [
                e.name
                for e in entries
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return
    for name in sorted(subs):
        yield folder / name


def assign(entries: Sequence[Written], defaults: Options, base: Path) -> list[Owned]:
    """Each matched folder's options and name, and what each recursive walk must skip.

    Linear in the number of folders (times their depth): each folder looks up its parents.
    """
    direct: dict[Path, list[Written]] = {}
    for entry in entries:
        for folder in entry.matched:
            direct.setdefault(folder, []).append(entry)
    # Strings, not Paths: a Path's parents are built one object at a time.
    merged: dict[str, Options] = {}
    claimed: dict[str, set[str]] = {}
    through: dict[str, set[str]] = {}
    owners: list[tuple[Path, Options, Written]] = []
    texts = {folder: str(folder) for folder in direct}
    shortest = min((len(t) for t in texts.values()), default=0)
    for folder in sorted(direct, key=lambda p: texts[p].count(os.sep)):
        text = texts[folder]
        options, walker = defaults, None
        parent = _parent(text)
        while parent is not None and len(parent) >= shortest:  # none with entries higher up
            above = merged.get(parent)
            if above is not None and above.recursive:
                options, walker = above, parent
                break
            parent = _parent(parent)
        for entry in direct[folder]:
            options = entry.apply(options)
        merged[text] = options
        if walker is not None:
            (claimed if options.recursive else through).setdefault(walker, set()).add(text)
        owners.append((folder, options, direct[folder][-1]))
    owned = []
    for folder, options, last in sorted(owners, key=lambda o: (o[2].index, o[0])):
        owned.append(
            Owned(
                path=folder,
                name=_name(folder, direct[folder], base),
                line=last.line,
                options=options,
                claimed=frozenset(claimed.get(str(folder), ())),
                through=frozenset(through.get(str(folder), ())),
            )
        )
    return owned


def _parent(text: str) -> str | None:
    """The folder above an absolute path, as text (cheaper than Path.parents); None at /."""
    if text == os.sep:
        return None
    return text.rpartition(os.sep)[0] or os.sep


def _name(folder: Path, entries: Sequence[Written], base: Path) -> str:
    """The folder's name in the ledger: as written when an entry names it, else relative."""
    for entry in reversed(entries):
        if not entry.pattern:
            return entry.path.rstrip("/\\") or entry.path
    return relative(folder, base)


def relative(folder: Path, base: Path) -> str:
    """``folder`` below ``base`` as a/b/c, or absolute when it is not below it."""
    text, prefix = str(folder), str(base).rstrip(os.sep) + os.sep
    if text.startswith(prefix):
        return text[len(prefix) :].replace(os.sep, "/")
    return text
