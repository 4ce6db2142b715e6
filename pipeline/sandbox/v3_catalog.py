"""The v3 tools the local emulator knows, their input slots and widgets, and the process check.

Slugs follow the documented naming rule (docs/api/AIHOMEDESIGN_V3.md 3): widget
``widget-<purpose>-<tool>``, item ``item-<value>-<widget>``, slot ``<tool>-input-image``. This
table is the emulator's own ("server truth"), independent of the client's.

The day-to-dusk sky-style items are unpublished (notes 4, 13.14): the emulator offers
``blue-hour``, ``golden-hour`` and ``twilight``, plausible guesses, and the widget is optional
(the MCP server sends day-to-dusk without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TOOL_NOT_FOUND = "tool repository: tool not found"


@dataclass(frozen=True, slots=True)
class Widget:
    """One widget of a tool: single (one item) or multi, required or not, its item slugs."""

    slug: str
    kind: Literal["single", "multi"]
    required: bool
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tool:
    """One v3 tool: its tools-list record and the process inputs it takes."""

    id: int
    name: str
    slug: str
    slot: str
    widgets: tuple[Widget, ...]

    def widget(self, slug: str) -> Widget | None:
        return next((widget for widget in self.widgets if widget.slug == slug), None)


def _widget(
    purpose: str, tool: str, kind: Literal["single", "multi"], required: bool, values: str
) -> Widget:
    slug = f"widget-{purpose}-{tool}"
    return Widget(slug, kind, required, tuple(f"item-{value}-{slug}" for value in values.split()))


def _tool(id_: int, name: str, slug: str, *widgets: tuple[str, str, bool, str]) -> Tool:
    made = tuple(
        _widget(purpose, slug, "multi" if kind == "multi" else "single", required, values)
        for purpose, kind, required, values in widgets
    )
    return Tool(id_, name, slug, f"{slug}-input-image", made)


STAGING_SPACES = "bedroom living-room kitchen bathroom dining-room home-office outdoor nursery"
STAGING_STYLES = "prime modern farmhouse scandinavian hampton industrial traditional contemporary"

TOOLS: dict[str, Tool] = {
    tool.slug: tool
    for tool in (
        _tool(
            1,
            "Image Enhancement",
            "tool-image-enhancement",
            ("area", "single", True, "indoor outdoor"),
            ("enhancement-options", "multi", False, "add-fire-to-fireplace add-screen-to-tv"),
        ),
        _tool(
            2,
            "Day to Dusk",
            "tool-day-to-dusk",
            ("sky-style", "single", False, "blue-hour golden-hour twilight"),
            ("day-to-dusk-options", "multi", False, "shadow-removal lawn-touch-up"),
        ),
        _tool(3, "Item Removal", "tool-item-removal"),
        _tool(
            4,
            "Virtual Staging",
            "tool-virtual-staging",
            ("space", "single", True, STAGING_SPACES),
            ("style", "single", True, STAGING_STYLES),
        ),
    )
}


def tools_list() -> list[dict[str, object]]:
    """The body's records of GET /api/tools."""
    return [
        {"id": tool.id, "name": tool.name, "slug": tool.slug, "isActive": True}
        for tool in TOOLS.values()
    ]


def widget_problem(tool: Tool, widgets: list[tuple[str, list[str]]]) -> str | None:
    """Why these (widget slug, item slugs) do not fit the tool (a 422), or None if they do."""
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
        if widget.required and widget.slug not in seen:
            return f"widget {widget.slug} is required: choose one of {list(widget.items)}"
    return None
