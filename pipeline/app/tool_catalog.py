"""`aihd catalog --api v3`: the tools the API's tools list offers, with what aihd knows of each.

No v3 call lists a tool's widgets or items, so they come from aihd's table (pipeline.api.tools);
which tools are offered comes from the live tools list, when it can be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.api import tools
from pipeline.api.v3_slugs import check_live, not_orderable, orderable
from pipeline.errors import ToolOptionError

__all__ = ["describe_v3", "render_v3"]


def _why_not(tool: tools.Tool, live: Sequence[str] | None) -> str | None:
    if not orderable(tool):
        return not_orderable(tool)
    try:
        check_live(tool.slug, live)
    except ToolOptionError:
        return tool.missing or "not offered by the API's tools list"
    return None


def _tool(tool: tools.Tool, live: Sequence[str] | None) -> dict[str, Any]:
    return {
        "tool": tool.name,
        "label": tool.label,
        "slug": tool.slug,
        "offered": None if live is None else tool.slug in live,
        "orderable": _why_not(tool, live) is None,
        "why_not": _why_not(tool, live),
        "alters": tool.alters,
        "widgets": [
            {
                "key": widget.key,
                "label": widget.label,
                "slug": widget.slug,
                "multi": widget.multi,
                "required": widget.required and not widget.api_default,
                "api_default": widget.api_default,
                "items": [
                    {
                        "value": item.value,
                        "label": item.label,
                        "slug": widget.item_slug(item),
                        "alters": item.alters,
                    }
                    for item in widget.items
                ],
            }
            for widget in tool.widgets
        ],
    }


def describe_v3(live: Sequence[str] | None) -> list[dict[str, Any]]:
    """Every tool: the list's (in its order, those aihd does not know too), then aihd's others.

    ``live``: the active slugs of the tools list, or None when it could not be read.
    """
    described = []
    for slug in live or ():
        known = tools.TOOLS.get(slug)
        if known is not None:
            described.append(_tool(known, live))
        else:
            name = slug.removeprefix("tool-")
            why = "aihd does not know its widgets: not orderable yet"
            described.append(
                {
                    "tool": name,
                    "label": tools.label(slug),
                    "slug": slug,
                    "offered": True,
                    "orderable": False,
                    "why_not": why,
                    "alters": True,
                    "widgets": [],
                }
            )
    described += [_tool(t, live) for t in tools.TOOLS.values() if t.slug not in (live or ())]
    return described


def _widget_line(widget: dict[str, Any]) -> str:
    count = "any of" if widget["multi"] else "one of"
    if widget["key"] == "space":
        need = "default: indoor"  # the manifest's space, whose default is indoor
    elif widget["required"]:
        need = "required"
    elif widget["api_default"]:
        need = "optional: the API picks one if left out"
    else:
        need = "optional"
    return f"  {widget['key']}: {count} ({need})"


def _block(tool: dict[str, Any]) -> list[str]:
    change = "alters the photo" if tool["alters"] else "an exempt edit"
    lines = [f"{tool['tool']}  {tool['label']}  ({change})"]
    if tool["why_not"]:
        lines.append(f"  cannot be ordered: {tool['why_not']}")
    for widget in tool["widgets"]:
        lines.append(_widget_line(widget))
        lines += [f"    - {item['value']}  {item['label']}" for item in widget["items"]]
    return lines


def render_v3(described: list[dict[str, Any]]) -> str:
    """The catalog as text: one block per tool, its manifest keys and their values."""
    lines = []
    if all(tool["offered"] is None for tool in described):
        lines.append("(the tools list could not be read: every tool aihd knows is shown)")
    for tool in (t for t in described if t["offered"] is not False):
        lines += _block(tool)
    if absent := [t for t in described if t["offered"] is False]:
        lines += ["", "Known to aihd, not offered by the API's tools list:"]
        for tool in absent:
            lines += _block(tool)
    lines += [
        "",
        "In a manifest (api: v3): `tool: <tool>`, then each key with a value, its label or its "
        "full slug.",
    ]
    return "\n".join(lines)
