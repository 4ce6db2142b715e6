"""The local emulator's v1 catalog: spaces, each with its Enhancement Options widget and items.

Ids are opaque and drawn per emulator, as the API's are only known at run time. A test may
rename an entry between two runs (``rename``: a space's id, name or title; the widget's id or
title; an item's id or title), as the API renamed a space's slug between two nights (issue
20.3): orders then name the entry as it is spelled now, and its old spelling is refused.
"""

from __future__ import annotations

__all__ = [
    "ENHANCEMENT_WIDGET_TITLE",
    "SPACES",
    "CatalogItem",
    "CatalogSpace",
    "Kind",
    "Remembered",
    "SandboxCatalog",
    "Spelling",
    "opaque_id",
]

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

ENHANCEMENT_WIDGET_TITLE = "Enhancement Options"
# Space name -> (title, item titles it offers); ids are drawn per sandbox instance.
SPACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "space-ie-indoor": (
        "Indoor",
        ("Add Fire to Fireplace", "Add Screen to TV", "Remove Extra Objects"),
    ),
    "space-ie-outdoor": ("Outdoor", ("Remove Extra Objects",)),
}

Kind = Literal["space", "widget", "item"]
# (kind, fresh ids by name) -> the ids to use: the fresh ones, or those drawn before.
Remembered = Callable[[str, Mapping[str, str]], dict[str, str]]
Spelling = Literal["id", "name", "title"]


def opaque_id() -> str:
    return secrets.token_hex(12)


@dataclass(slots=True)
class CatalogItem:
    id: str
    title: str


@dataclass(slots=True)
class CatalogSpace:
    """One space and its one (optional) Enhancement Options widget."""

    id: str
    name: str
    title: str
    widget_id: str
    widget_title: str
    items: list[CatalogItem] = field(default_factory=list)


class SandboxCatalog:
    """The catalog as the emulator serves it now; safe from any thread."""

    def __init__(self, remembered: Remembered | None = None) -> None:
        """``remembered``: the ids an earlier emulator of the account drew (memory.py's
        ``ids``), so an emulator that remembers its orders serves the same catalog."""
        keep = remembered or (lambda _kind, fresh: dict(fresh))
        self._lock = threading.Lock()
        space_ids = keep("space", {name: opaque_id() for name in SPACES})
        self._spaces = []
        for name, (title, titles) in SPACES.items():
            widget_id = keep("widget", {name: opaque_id()})[name]
            item_ids = keep(f"item:{name}", {t: opaque_id() for t in titles})
            items = [CatalogItem(item_ids[t], t) for t in titles]
            self._spaces.append(
                CatalogSpace(
                    space_ids[name], name, title, widget_id, ENHANCEMENT_WIDGET_TITLE, items
                )
            )

    def spaces(self) -> list[CatalogSpace]:
        """A copy of the spaces as they are now."""
        with self._lock:
            return [
                CatalogSpace(
                    s.id,
                    s.name,
                    s.title,
                    s.widget_id,
                    s.widget_title,
                    [CatalogItem(i.id, i.title) for i in s.items],
                )
                for s in self._spaces
            ]

    def space(self, name: str) -> CatalogSpace | None:
        """The space an order or a widgets query names (by its name, as the API's are)."""
        return next((s for s in self.spaces() if s.name == name), None)

    def rename(self, kind: Kind, which: str, spelling: Spelling, new: str) -> None:
        """Rename one spelling of the entry whose id, name or title is ``which``: a space's
        id, name or title; the widget's or an item's id or title (of every space that has
        it). ValueError names what is wrong."""
        if spelling == "name" and kind != "space":
            raise ValueError(f"a {kind} has no name: rename its id or title")
        with self._lock:
            found = 0
            for space in self._spaces:
                if kind == "space" and which in (space.id, space.name, space.title):
                    setattr(space, spelling, new)
                    found += 1
                elif kind == "widget" and which in (space.widget_id, space.widget_title):
                    setattr(space, f"widget_{spelling}", new)
                    found += 1
                elif kind == "item":
                    for item in space.items:
                        if which in (item.id, item.title):
                            setattr(item, spelling, new)
                            found += 1
            if not found:
                raise ValueError(f"no {kind} has the id, name or title {which!r}")
