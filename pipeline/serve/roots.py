"""Which served folder holds a photo: its own directories looked up, nearest first.

A scope of every served folder asked of the ledger cost each photo a comparison per folder
(a second of CPU at 1,000 folders); a path has a handful of directories to look up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

__all__ = ["by_root", "nearest"]

T = TypeVar("T")


def by_root(pairs: Iterable[tuple[str, T]]) -> dict[str, T]:
    """A table of folders (as ``/a/b/``, with the trailing slash) and what each stands for."""
    return {folder.rstrip("/") + "/": value for folder, value in pairs}


def nearest(path: str, table: Mapping[str, T]) -> T | None:
    """What the nearest folder above ``path`` stands for; None if none of them holds it."""
    directory = path
    while "/" in directory:
        directory = directory.rsplit("/", 1)[0]
        if (found := table.get(directory + "/")) is not None:
            return found
    return None
