"""A manifest folder's v3 tool and options as the API's slugs: the order spec of its photos.

The tools, their widgets and items are the table's (``pipeline.api.tools``); each widget is
chosen by one manifest key: ``space`` (image enhancement's area), ``enhancements`` (a tool's
toggles), ``room``, ``style``, ``sky``, ``color``, ``material``, ``darkness``. A value may be
written as its short value (``golden-hour``), its label (``Golden Hour``) or its full slug. No
v3 call lists a tool's widgets or items; the tools list (``GET /api/tools``) says which tools
the account's API offers, when it can be had (``check_live``).

Pure functions: the manifest is checked with them before anything is spent.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.api import tools
from pipeline.api.records import V3_PREFIX, OrderSpec
from pipeline.api.tools import ROOMS, STYLES, Tool, Widget, slugify
from pipeline.errors import ToolOptionError

__all__ = [
    "CHOICE_KEYS",
    "DEFAULT_TOOL",
    "ROOMS",
    "STYLES",
    "build_spec",
    "check_live",
    "identity_parts",
    "not_orderable",
    "orderable",
    "tool_name",
]

DEFAULT_TOOL = "image-enhancement"
# The keys that choose one item of a widget (besides space and enhancements), in table order.
CHOICE_KEYS = ("room", "style", "sky", "color", "material", "darkness")
_NOUNS = {"enhancements": "option", "color": "colour", "darkness": "darkness factor"}


def tool_name(written: str) -> str:
    """A tool as a manifest may write it: "day to dusk", "Day-to-Dusk", "tool-day-to-dusk"."""
    return slugify(written).removeprefix("tool-")


def orderable(tool: Tool) -> bool:
    """aihd sends one photo per order: a tool that takes two images cannot be ordered."""
    return len(tool.inputs) == 1


def not_orderable(tool: Tool) -> str:
    """Why aihd cannot order a tool that takes two images per photo."""
    images = " and ".join(i.removeprefix("image-") for i in tool.inputs)
    hint = ": use item-removal, which finds the items itself" if "mask" in tool.inputs else ""
    return (
        f"tool {tool.name} takes two images per photo ({images}); aihd sends one photo per "
        f"order and cannot order it{hint}"
    )


def _tool(written: str) -> Tool:
    name = tool_name(written)
    found = tools.TOOLS.get(f"tool-{name}")
    if found is None:
        by_label = tools.find(written)
        if by_label is not None and by_label.tool is not None and by_label.widget is None:
            found = by_label.tool
    if found is None:
        valid = ", ".join(t.name for t in tools.TOOLS.values() if orderable(t))
        raise ToolOptionError("tool", f"tool {written!r} is not one aihd orders; valid: {valid}")
    if not orderable(found):
        raise ToolOptionError("tool", not_orderable(found))
    return found


def _values(widget: Widget) -> str:
    return ", ".join(item.value for item in widget.items)


def _chosen(tool: Tool, widget: Widget, written: Sequence[str]) -> tuple[tools.Item, ...]:
    """The items written for a widget, each checked; a toggle list is sorted by value."""
    noun = _NOUNS.get(widget.key, widget.key)
    picked: dict[str, tools.Item] = {}
    for value in written:
        item = widget.item(value)
        if item is None:
            raise ToolOptionError(
                widget.key,
                f"{widget.key} {value!r} is not a {noun} of {tool.name}; valid: {_values(widget)}",
            )
        picked[item.value] = item
    if len(picked) > 1 and not widget.multi:
        raise ToolOptionError(
            widget.key, f"{widget.key} of {tool.name} takes one {noun}, not {len(picked)}"
        )
    if not picked and widget.required and not widget.api_default:
        raise ToolOptionError(
            widget.key, f"tool {tool.name} needs {widget.key}: (one of {_values(widget)})"
        )
    return tuple(sorted(picked.values(), key=lambda item: item.value))


def build_spec(
    tool: str,
    *,
    space: str = "indoor",
    enhancements: Sequence[str] = (),
    project: str = "",
    **choices: str | None,
) -> OrderSpec:
    """A v3 photo's tool, slot and widgets; ``ToolOptionError`` names the key that is wrong.

    ``choices``: the CHOICE_KEYS a folder wrote (None: not written). ``space`` is read only by
    a tool with an area (image enhancement), as a manifest's default space is always there.
    """
    rule = _tool(tool)
    given = {key: value for key, value in choices.items() if value is not None}
    for key in [*given, *(["enhancements"] if enhancements else [])]:
        if rule.widget(key) is None:
            keys = [w.key for w in rule.widgets if w.key != "space"]
            them = "them" if key == "enhancements" else "it"
            raise ToolOptionError(
                key,
                f"{key} is not an option of tool {rule.name}: remove {them} "
                f"(its options: {', '.join(keys) or 'none'})",
            )
    widgets: list[tuple[str, tuple[str, ...]]] = []
    space_name = ""
    for widget in rule.widgets:
        if widget.key == "space":
            written: Sequence[str] = [space]
        elif widget.key == "enhancements":
            written = enhancements
        else:
            written = [given[widget.key]] if widget.key in given else []
        items = _chosen(rule, widget, written)
        if not items:
            continue
        widgets.append((widget.slug, tuple(widget.item_slug(item) for item in items)))
        if widget.key in ("space", "room"):
            space_name = items[0].value
    return OrderSpec(
        service=V3_PREFIX + rule.slug,
        space_name=space_name,
        tool=rule.slug,
        slot=rule.slots[0],
        widgets=tuple(widgets),
        project=project,
    )


def identity_parts(spec: OrderSpec) -> tuple[str, tuple[str, ...]]:
    """(space, enhancements) of the ledger's row for a v3 photo: its area or room, and every
    other item slug. With ``service`` (``v3:<tool slug>``) they make its identity."""
    items = tuple(sorted(i for _, slugs in spec.widgets for i in slugs))
    return spec.space_name, items


def check_live(slug: str, live: Sequence[str] | None, *, where: str = "") -> None:
    """Refuse a tool the tools list does not offer (active), listing those it does that aihd
    orders. Without the list (``None``), refuse only a tool the API is known not to find."""
    name = slug.removeprefix("tool-")
    known = tools.TOOLS.get(slug)
    if live is None:
        if known is not None and known.missing:
            raise ToolOptionError(
                "tool", f"{where}tool {name!r} cannot be ordered: {known.missing}"
            )
        return
    if slug in live:
        return
    offered = [s.removeprefix("tool-") for s in live if (t := tools.TOOLS.get(s)) and orderable(t)]
    why = f" ({known.missing})" if known is not None and known.missing else ""
    raise ToolOptionError(
        "tool",
        f"{where}tool {name!r} is not offered by the API's tools list{why}; "
        f"offered: {', '.join(offered) or 'none'}",
    )
