"""The v3 tools the local emulator serves, their input slots and widgets, and the process check.

The emulator's own table ("server truth"), written apart from the client's so that a slug the
client gets wrong is refused here rather than agreed with. It plays the vendor's catalog (its
client ``AIHomeDesign/aihomedesign-mcp`` at 4b22a93, ``app/catalog.py``; notes sections 3, 4 and
"The vendor's own client against the sandbox"): slugs by the documented rule, widget
``widget-<purpose>-<tool>``, item ``item-<value>-<widget>``, slots ``<tool>-input-<input>``.

The two tools the vendor reports missing live (``tool-furniture-set-restyle``,
``tool-sky-change``) are not served: a process of either is a 500 "tool not found", as live.
The docs' ``tool-furniture-restyle`` is served in their place.

Widgets the vendor's catalog marks required but its own client leaves out (day to dusk's sky;
the renovation tools' room and material) are ``omittable``: whether the API then picks one or
refuses is the ``omitted_widgets`` reading (v3_readings.py).
"""

from __future__ import annotations

__all__ = [
    "ROOMS",
    "STYLES",
    "TOOLS",
    "TOOL_NOT_FOUND",
    "Tool",
    "Widget",
    "tools_list",
    "widget_problem",
]

from dataclasses import dataclass
from typing import Literal

TOOL_NOT_FOUND = "tool repository: tool not found"

ROOMS = "bedroom living-room kitchen bathroom dining-room home-office outdoor nursery"
STYLES = "prime modern farmhouse scandinavian hampton industrial traditional contemporary"


@dataclass(frozen=True, slots=True)
class Widget:
    """One widget of a tool: single (one item) or multi, required or not, its item slugs."""

    slug: str
    kind: Literal["single", "multi"]
    required: bool
    items: tuple[str, ...]
    omittable: bool = False  # required, yet the vendor's own client leaves it out


@dataclass(frozen=True, slots=True)
class Tool:
    """One v3 tool: its tools-list record and the process inputs it takes."""

    id: int
    name: str
    slug: str
    slots: tuple[str, ...]
    widgets: tuple[Widget, ...]

    def widget(self, slug: str) -> Widget | None:
        return next((widget for widget in self.widgets if widget.slug == slug), None)


# (purpose, "single"|"multi", "required"|"omittable"|"optional", item values)
_Spec = tuple[str, str, str, str]


def _tool(id_: int, name: str, slug: str, *widgets: _Spec, inputs: str = "image") -> Tool:
    made = []
    for purpose, kind, need, values in widgets:
        widget = f"widget-{purpose}-{slug}"
        made.append(
            Widget(
                widget,
                "multi" if kind == "multi" else "single",
                need != "optional",
                tuple(f"item-{value}-{widget}" for value in values.split()),
                omittable=need == "omittable",
            )
        )
    slots = tuple(f"{slug}-input-{one}" for one in inputs.split())
    return Tool(id_, name, slug, slots, tuple(made))


def _staged(id_: int, name: str, slug: str, *more: _Spec) -> Tool:
    return _tool(
        id_,
        name,
        slug,
        ("space", "single", "required", ROOMS),
        ("style", "single", "required", STYLES),
        *more,
    )


def _renovation(id_: int, name: str, slug: str, rooms: str, materials: str) -> Tool:
    return _tool(
        id_,
        name,
        slug,
        ("space", "single", "omittable", rooms),
        ("material", "single", "omittable", materials),
    )


TOOLS: dict[str, Tool] = {
    tool.slug: tool
    for tool in (
        _tool(
            1,
            "Image Enhancement",
            "tool-image-enhancement",
            ("area", "single", "required", "indoor outdoor"),
            ("enhancement-options", "multi", "optional", "add-fire-to-fireplace add-screen-to-tv"),
        ),
        _tool(
            2,
            "Day to Dusk",
            "tool-day-to-dusk",
            ("sky-style", "single", "omittable", "dusk-with-cloud clear-dusk golden-hour"),
            ("day-to-dusk-options", "multi", "optional", "shadow-removal lawn-touch-up"),
        ),
        _tool(3, "Item Removal", "tool-item-removal"),
        _staged(4, "Virtual Staging", "tool-virtual-staging"),
        _staged(5, "Virtual Restaging", "tool-virtual-restaging"),
        _staged(
            6,
            "Interior Design",
            "tool-interior-design",
            (
                "color",
                "single",
                "optional",
                "earthy-neutrals warm-tones cool-tones monochrome pastel",
            ),
        ),
        _staged(7, "Furniture Restyle", "tool-furniture-restyle"),
        _staged(8, "Under Construction", "tool-under-construction"),
        _renovation(
            9,
            "Wall Change",
            "tool-wall-change",
            "bedroom living-room kitchen bathroom",
            "brick-wall white-paint wallpaper concrete",
        ),
        _renovation(
            10,
            "Floor Change",
            "tool-floor-change",
            "bedroom living-room kitchen bathroom",
            "white-marble hardwood tile carpet",
        ),
        _renovation(
            11,
            "Ceiling Change",
            "tool-ceiling-change",
            "bedroom living-room kitchen",
            "wooden-ceiling white-paint coffered",
        ),
        _renovation(
            12,
            "Backsplash Change",
            "tool-backsplash-change",
            "kitchen bathroom",
            "grey-marble subway-tile mosaic white-marble",
        ),
        _tool(13, "Item Removal (Mask)", "tool-item-removal-mask", inputs="image mask"),
        _tool(
            14,
            "Darkness",
            "tool-darkness",
            ("darkness-factor", "single", "required", "factor-darker factor-lighter"),
            inputs="image-before image-after",
        ),
    )
}


def tools_list() -> list[dict[str, object]]:
    """The body's records of GET /api/tools."""
    return [
        {"id": tool.id, "name": tool.name, "slug": tool.slug, "isActive": True}
        for tool in TOOLS.values()
    ]


def widget_problem(
    tool: Tool, widgets: list[tuple[str, list[str]]], *, omitted_refused: bool = False
) -> str | None:
    """Why these (widget slug, item slugs) do not fit the tool (a 422), or None if they do.

    ``omitted_refused``: an omittable widget left out is refused too (the catalog's reading).
    """
    seen: set[str] = set()
    for slug, items in widgets:
        widget = tool.widget(slug)
        if widget is None:
            known = [w.slug for w in tool.widgets] or "none"
            return f"widget {slug!r} is not a widget of {tool.slug}; widgets: {known}"
        if slug in seen:
            return f"widget {slug!r} is given twice"
        seen.add(slug)
        for item in items:
            if item not in widget.items:
                return f"item {item!r} is not in widget {slug}; items: {list(widget.items)}"
        if widget.kind == "single" and len(items) > 1:
            return f"widget {slug} takes one item, got {len(items)}"
        if widget.required and not items:
            return f"widget {slug} is required: choose one of {list(widget.items)}"
    for widget in tool.widgets:
        needed = widget.required and (omitted_refused or not widget.omittable)
        if needed and widget.slug not in seen:
            return f"widget {widget.slug} is required: choose one of {list(widget.items)}"
    return None
