"""Every tool and toggle aihd knows: a label a person reads, and whether it alters the photo.

The table (``tool_table``) holds the v3 tools with their widgets and items, and v1's
image-enhancement toggles. Ask it with :func:`label` and :func:`alters`, which take a tool,
widget or item slug, a ledger service (``v3:tool-day-to-dusk``, ``service-image-enhancement``),
a short value (``golden-hour``) or a v1 title (``Add Fire to Fireplace``), in any case; with
:func:`find` for the entry itself; with :func:`describe` for a ledger row. Pure lookups.

"Alters" is what an MLS disclosure asks (California AB 723, the MLS rules of issue 26):
exposure, colour, sharpness and straightening are exempt edits (``EXEMPT_EDITS``, with aihd's own
resizing and padding); anything that changes what the photo shows (fire, a TV picture, objects
removed, dusk, a new sky, staging, new materials) is an alteration, and so is anything the table
does not know. Review, export, plan and deliver all read a photo's words from :func:`describe`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.api.tool_table import (
    EXEMPT_EDITS,
    ROOMS,
    STYLES,
    TOOLS,
    V1_SERVICE,
    V1_SERVICES,
    V1_TOGGLES,
    Item,
    Tool,
    Widget,
    slugify,
    title,
)

__all__ = [
    "EXEMPT_EDITS",
    "ROOMS",
    "STYLES",
    "TOOLS",
    "V1_SERVICE",
    "V1_TOGGLES",
    "Described",
    "Found",
    "Item",
    "Tool",
    "Widget",
    "alters",
    "describe",
    "find",
    "label",
    "slugify",
    "space_label",
    "v3_item_of_v1",
]


@dataclass(frozen=True, slots=True)
class Found:
    """What a name stands for: a tool, a widget of it, or an item (of a widget, or v1's)."""

    tool: Tool | None
    widget: Widget | None = None
    item: Item | None = None

    @property
    def label(self) -> str:
        shown = self.item or self.widget or self.tool
        return shown.label if shown is not None else ""

    @property
    def alters(self) -> bool:
        if self.item is not None:
            return self.item.alters
        return self.tool.alters if self.tool is not None else True


def _index() -> tuple[dict[str, Found], dict[str, list[Found]]]:
    """Full slugs (exact) and short names (value, label; a value may belong to several)."""
    slugs = {service: Found(TOOLS[tool]) for service, tool in V1_SERVICES.items()}
    short: dict[str, list[Found]] = {}

    def add_short(found: Found, *names: str) -> None:
        for name in dict.fromkeys(names):
            short.setdefault(name, []).append(found)

    for tool in TOOLS.values():
        slugs[tool.slug] = Found(tool)
        add_short(Found(tool), tool.name, slugify(tool.label))
        for widget in tool.widgets:
            slugs[widget.slug] = Found(tool, widget)
            for item in widget.items:
                found = Found(tool, widget, item)
                slugs[widget.item_slug(item)] = found
                add_short(found, item.value, slugify(item.label))
    for item in (*V1_TOGGLES, *EXEMPT_EDITS):
        add_short(Found(None, None, item), item.value, slugify(item.label))
    return slugs, short


_SLUGS, _SHORT = _index()
_UNKNOWN_SLUG = re.compile(r"^(?:item-(?P<item>.+?)-widget-|widget-(?P<widget>.+?)-tool-|tool-)")


def _matches(name: str) -> list[Found]:
    key = slugify(name.strip().removeprefix("v3:"))
    exact = _SLUGS.get(key)
    if exact is not None:
        return [exact]
    return list(_SHORT.get(key, ()))


def find(name: str) -> Found | None:
    """The tool, widget or item ``name`` stands for (the first, if a short value is shared)."""
    found = _matches(name)
    return found[0] if found else None


def label(name: str) -> str:
    """A human label: "tool-day-to-dusk", "v3:tool-day-to-dusk" or "day to dusk" -> "Day to
    Dusk"; an item slug, short value or v1 title -> its label. An unknown slug is made
    readable ("item-foo-bar-widget-..." -> "Foo Bar"); any other unknown text is returned."""
    found = _matches(name)
    if found:
        return found[0].label
    text = name.strip().removeprefix("v3:")
    match = _UNKNOWN_SLUG.match(slugify(text))
    if match is None:
        return text
    part = match["item"] or match["widget"] or slugify(text)[match.end() :]
    return title(part.split("-widget-")[0].split("-tool-")[0])


def alters(name: str) -> bool:
    """Whether a tool or toggle changes what the photo shows; unknown ones do (to be safe)."""
    found = _matches(name)
    return any(f.alters for f in found) if found else True


@dataclass(frozen=True, slots=True)
class Described:
    """A photo's options in words: its tool, space (area or room) and other choices; and,
    for a disclosure, which of them alter what the photo shows and which are exempt edits."""

    tool: str
    space: str
    options: tuple[str, ...]
    alters: bool
    what: str  # what the tool changes, in a few words ("" if unknown)
    altered: tuple[str, ...] = ()  # each alteration in words: "Day to Dusk (daylight ...)"
    exempt: tuple[str, ...] = ()  # the exempt edits in words: "exposure, colour, sharpness"


def describe(service: str, space: str, enhancements: Iterable[str]) -> Described:
    """A ledger row's ``service``, ``space`` and ``enhancements`` (v1 titles or v3 item slugs)
    as a person reads them. Single choices read "Sky: Golden Hour", toggles "Shadow Removal"."""
    chosen = tuple(enhancements)
    tool = find(service)
    changed = alters(service) or any(alters(e) for e in chosen)
    known = tool.tool if tool is not None else None
    what = known.what if known is not None else ""
    name = label(service)
    tool_words: tuple[tuple[str, ...], tuple[str, ...]]
    if known is None:
        tool_words = ((f"{name} (a tool aihd does not know: counted as an alteration)",), ())
    elif known.alters:
        tool_words = ((f"{name} ({what})",), ())
    else:
        tool_words = ((), (what,))
    shown_space = space
    options: list[str] = []
    altering: list[str] = []
    for written in chosen:
        words, is_space = _option_words(written, space, service.startswith("v3:"))
        if is_space:
            shown_space = words
            continue
        options.append(words)
        if alters(written):
            altering.append(words)
    if service.startswith("v3:") and shown_space == space:
        shown_space = title(space) if space else ""
    return Described(
        name,
        shown_space,
        tuple(options),
        changed,
        what,
        altered=(*tool_words[0], *altering),
        exempt=tool_words[1],
    )


def _option_words(written: str, space: str, v3: bool) -> tuple[str, bool]:
    """One chosen option in words, and whether it is the photo's space (area or room)."""
    if not v3:
        return label(written), False
    found = _SLUGS.get(written)
    if found is None or found.widget is None or found.item is None:
        return label(written), False
    if found.widget.key in ("space", "room") and found.item.value == space:
        return found.item.label, True
    if found.widget.multi or found.widget.key == "enhancements":
        return found.item.label, False
    return f"{found.widget.label}: {found.item.label}", False


def space_label(space: str) -> str:
    """A v1 catalog space as a person reads it ("space-ie-indoor" -> "Indoor",
    "space-living-room" -> "Living room"); any other text as it is."""
    if not space.startswith("space-"):
        return space
    words = space.removeprefix("space-").removeprefix("ie-").strip("-").replace("-", " ")
    return words[:1].upper() + words[1:] if words else space


def v3_item_of_v1(title: str) -> str | None:
    """The v3 image-enhancement item slug of a v1 toggle ("Add Fire to Fireplace"), or None
    when v3 has none ("Remove Extra Objects") or the title is unknown."""
    widget = TOOLS["tool-image-enhancement"].widget("enhancements")
    item = widget.item(title) if widget is not None else None
    return widget.item_slug(item) if widget is not None and item is not None else None
