"""The v3 tools a listing folder may name, and their widgets' slugs by the documented rule.

Rule (notes section 3): tool ``tool-<name>``; widget ``widget-<purpose>-<tool slug>``; item
``item-<value>-<widget slug>``; input slot ``<tool slug>-input-image``. No v3 call lists a tool's
widgets or items, so the values below are the published ones (notes sections 3 and 4); the
tools list (``GET /api/tools``) says which tools the account's API offers, when it can be had.

Pure functions: the manifest is checked with them before anything is spent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.api.records import V3_PREFIX, OrderSpec
from pipeline.errors import ToolOptionError

DEFAULT_TOOL = "image-enhancement"
SPACES = ("indoor", "outdoor")
IE_OPTIONS = ("add-fire-to-fireplace", "add-screen-to-tv")
DUSK_OPTIONS = ("shadow-removal", "lawn-touch-up")
ROOMS = (
    "bedroom",
    "living-room",
    "kitchen",
    "bathroom",
    "dining-room",
    "home-office",
    "outdoor",
    "nursery",
)
STYLES = (
    "prime",
    "modern",
    "farmhouse",
    "scandinavian",
    "hampton",
    "industrial",
    "traditional",
    "contemporary",
)


@dataclass(frozen=True, slots=True)
class ToolRule:
    """What one tool takes: ``options`` for ``enhancements``; rooms and styles when staging."""

    name: str
    options: tuple[str, ...] = ()
    options_widget: str = ""  # the purpose of the enhancements' widget
    area: bool = False  # image enhancement: space indoor/outdoor -> the area widget
    staging: bool = False  # room and style, both required

    @property
    def slug(self) -> str:
        return tool_slug(self.name)


TOOLS: dict[str, ToolRule] = {
    "image-enhancement": ToolRule(
        "image-enhancement", IE_OPTIONS, "enhancement-options", area=True
    ),
    # The sky widget is left out, as the vendor's own client does: its slugs are unpublished.
    "day-to-dusk": ToolRule("day-to-dusk", DUSK_OPTIONS, "day-to-dusk-options"),
    "item-removal": ToolRule("item-removal"),
    "virtual-staging": ToolRule("virtual-staging", staging=True),
}


def slugify(text: str) -> str:
    """A value as the API's slugs spell it: "Add Fire to Fireplace" -> add-fire-to-fireplace."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().casefold()).strip("-")


def tool_slug(name: str) -> str:
    return f"tool-{name}"


def widget_slug(purpose: str, tool: str) -> str:
    return f"widget-{purpose}-{tool}"


def item_slug(value: str, widget: str) -> str:
    return f"item-{value}-{widget}"


def slot_slug(tool: str) -> str:
    return f"{tool}-input-image"


def tool_name(written: str) -> str:
    """A tool as a manifest may write it: "day to dusk", "Day-to-Dusk", "tool-day-to-dusk"."""
    name = slugify(written)
    return name.removeprefix("tool-")


def _one_of(key: str, value: str, valid: Sequence[str], what: str) -> str:
    wanted = slugify(value)
    if wanted not in valid:
        raise ToolOptionError(key, f"{key} {value!r} is not a {what}; valid: {', '.join(valid)}")
    return wanted


def build_spec(
    tool: str,
    *,
    space: str = "indoor",
    enhancements: Sequence[str] = (),
    room: str | None = None,
    style: str | None = None,
    project: str = "",
) -> OrderSpec:
    """A v3 photo's tool, slot and widgets; ``ToolOptionError`` names the key that is wrong."""
    name = tool_name(tool)
    rule = TOOLS.get(name)
    if rule is None:
        raise ToolOptionError(
            "tool", f"tool {tool!r} is not one aihd orders; valid: {', '.join(TOOLS)}"
        )
    slug = rule.slug
    widgets: list[tuple[str, tuple[str, ...]]] = []
    space_name = ""
    if rule.area:
        space_name = _one_of("space", space, SPACES, f"space of {name}")
        area = widget_slug("area", slug)
        widgets.append((area, (item_slug(space_name, area),)))
    if enhancements and not rule.options:
        raise ToolOptionError(
            "enhancements", f"enhancements are not options of tool {name}: remove them"
        )
    if rule.options:
        what = f"option of {name}"
        chosen = sorted({_one_of("enhancements", e, rule.options, what) for e in enhancements})
        if chosen:
            widget = widget_slug(rule.options_widget, slug)
            widgets.append((widget, tuple(item_slug(v, widget) for v in chosen)))
    if not rule.staging and (room is not None or style is not None):
        key = "room" if room is not None else "style"
        raise ToolOptionError(key, f"{key} is an option of virtual-staging only, not of {name}")
    if rule.staging:
        if room is None or style is None:
            key, valid = ("room", ROOMS) if room is None else ("style", STYLES)
            raise ToolOptionError(key, f"tool {name} needs {key}: (one of {', '.join(valid)})")
        space_name = _one_of("room", room, ROOMS, "room of virtual-staging")
        picked = _one_of("style", style, STYLES, "style of virtual-staging")
        space_widget = widget_slug("space", slug)
        style_widget = widget_slug("style", slug)
        widgets.append((space_widget, (item_slug(space_name, space_widget),)))
        widgets.append((style_widget, (item_slug(picked, style_widget),)))
    return OrderSpec(
        service=V3_PREFIX + slug,
        space_name=space_name,
        tool=slug,
        slot=slot_slug(slug),
        widgets=tuple(widgets),
        project=project,
    )


def identity_parts(spec: OrderSpec) -> tuple[str, tuple[str, ...]]:
    """(space, enhancements) of the ledger's row for a v3 photo: its area or room, and every
    other item slug. With ``service`` (``v3:<tool slug>``) they make its identity."""
    items = tuple(sorted(i for _, slugs in spec.widgets for i in slugs))
    return spec.space_name, items


def check_live(slug: str, live: Sequence[str], *, where: str = "") -> None:
    """Refuse a tool the tools list does not offer (active), listing those it does."""
    if slug in live:
        return
    offered = ", ".join(s.removeprefix("tool-") for s in live) or "none"
    raise ToolOptionError(
        "tool",
        f"{where}tool {slug.removeprefix('tool-')!r} is not offered by the API's tools list; "
        f"offered: {offered}",
    )
