"""The table of tools: every v3 tool with its widgets and items, and v1's toggles.

The v3 part restates the vendor's own client (``AIHomeDesign/aihomedesign-mcp`` at 4b22a93,
``app/catalog.py``) in aihd's words, plus the docs' slug for furniture restyle (notes section 4).
Each widget names the manifest key that chooses its items. ``pipeline.api.tools`` looks it up.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = [
    "EXEMPT_EDITS",
    "ROOMS",
    "STYLES",
    "TOOLS",
    "V1_SERVICE",
    "V1_SERVICES",
    "V1_TOGGLES",
    "Item",
    "Tool",
    "Widget",
]

V1_SERVICE = "service-image-enhancement"
ROOMS = ("bedroom", "living-room", "kitchen", "bathroom", "dining-room", "home-office", "outdoor",
         "nursery")  # fmt: skip
STYLES = ("prime", "modern", "farmhouse", "scandinavian", "hampton", "industrial", "traditional",
          "contemporary")  # fmt: skip
_SMALL_WORDS = frozenset({"a", "and", "of", "to", "with"})


def slugify(text: str) -> str:
    """A value as the API's slugs spell it: "Add Fire to Fireplace" -> add-fire-to-fireplace."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().casefold()).strip("-")


def title(value: str) -> str:
    """A slug's value as words: "lawn-touch-up" -> "Lawn Touch Up"."""
    words = value.split("-")
    return " ".join(w if n and w in _SMALL_WORDS else w.capitalize() for n, w in enumerate(words))


@dataclass(frozen=True, slots=True)
class Item:
    """One choice of a widget: ``value`` is the slug's part, ``item-<value>-<widget>``."""

    value: str
    label: str
    alters: bool


@dataclass(frozen=True, slots=True)
class Widget:
    """One widget of a tool, and the manifest ``key`` that chooses its items.

    ``required``: so in the vendor's catalog. ``api_default``: the vendor's own client leaves
    it out all the same (the API picks one), so a manifest may leave it out too.
    """

    purpose: str
    key: str
    label: str
    items: tuple[Item, ...]
    multi: bool = False
    required: bool = False
    api_default: bool = False
    tool: str = ""  # the tool's name, filled in by the table

    @property
    def slug(self) -> str:
        return f"widget-{self.purpose}-tool-{self.tool}"

    def item_slug(self, item: Item) -> str:
        return f"item-{item.value}-{self.slug}"

    def item(self, written: str) -> Item | None:
        """The item a manifest names: its value, label or full slug, any case or spacing."""
        wanted = slugify(written)
        if wanted.startswith("item-") and wanted.endswith(f"-{self.slug}"):
            wanted = wanted.removeprefix("item-").removesuffix(f"-{self.slug}")
        return next((i for i in self.items if wanted in (i.value, slugify(i.label))), None)


@dataclass(frozen=True, slots=True)
class Tool:
    """One v3 tool. ``inputs``: the images a photo's process takes (the asset map's slots);
    ``missing``: why the API is known not to find it, though the vendor's client lists it."""

    name: str
    label: str
    alters: bool
    what: str  # what it changes, in a few words (for a disclosure)
    widgets: tuple[Widget, ...] = ()
    inputs: tuple[str, ...] = ("image",)
    missing: str = ""

    @property
    def slug(self) -> str:
        return f"tool-{self.name}"

    @property
    def slots(self) -> tuple[str, ...]:
        """The asset map's keys: ``<tool>-input-<input>``."""
        return tuple(f"{self.slug}-input-{i}" for i in self.inputs)

    def widget(self, key: str) -> Widget | None:
        """The widget a manifest key chooses for this tool."""
        return next((w for w in self.widgets if w.key == key), None)


def _items(values: str, *, alters: bool = True, **labels: str) -> tuple[Item, ...]:
    """Items by value; a label is the value in words unless given (keyed value_with_underscores)."""
    return tuple(Item(v, labels.get(v.replace("-", "_"), title(v)), alters) for v in values.split())


def _tool(
    name: str, label: str, what: str, *widgets: Widget, alters: bool = True, **kw: str
) -> Tool:
    made = tuple(dataclasses.replace(w, tool=name) for w in widgets)
    inputs = tuple(kw.pop("inputs").split()) if "inputs" in kw else ("image",)
    return Tool(name, label, alters, what, made, inputs, kw.get("missing", ""))


def _room(rooms: str = " ".join(ROOMS), *, api_default: bool = False) -> Widget:
    return Widget("space", "room", "Room", _items(rooms), required=True, api_default=api_default)


_STYLE = Widget("style", "style", "Style", _items(" ".join(STYLES)), required=True)


def _renovation(name: str, rooms: str, materials: str) -> Tool:
    # The vendor's client sends the room only when given and never a material (their items
    # are unpublished, its catalog's are examples): the API picks them when left out.
    part = name.removesuffix("-change")
    return _tool(
        name,
        f"{title(part)} Change",
        f"{part} material or colour replaced",
        _room(rooms, api_default=True),
        Widget(
            "material", "material", "Material", _items(materials), required=True, api_default=True
        ),
    )


_ALL = (
    _tool(
        "image-enhancement", "Image Enhancement", "exposure, colour, sharpness",
        Widget("area", "space", "Area", _items("indoor outdoor", alters=False), required=True),
        Widget("enhancement-options", "enhancements", "Enhancements",
               _items("add-fire-to-fireplace add-screen-to-tv",
                      add_screen_to_tv="Add Screen to TV"), multi=True),
        alters=False,
    ),
    _tool(
        "day-to-dusk", "Day to Dusk", "daylight turned to dusk",
        # The vendor's client leaves the sky out unless asked: the API then picks one.
        Widget("sky-style", "sky", "Sky", _items("dusk-with-cloud clear-dusk golden-hour"),
               required=True, api_default=True),
        Widget("day-to-dusk-options", "enhancements", "Options",
               _items("shadow-removal lawn-touch-up", lawn_touch_up="Lawn Touch-Up"), multi=True),
    ),
    _tool("item-removal", "Item Removal", "furniture and clutter removed"),
    _tool("item-removal-mask", "Item Removal with a Mask", "the objects a mask marks removed",
          inputs="image mask"),
    _tool("virtual-staging", "Virtual Staging", "furniture added", _room(), _STYLE),
    _tool("virtual-restaging", "Virtual Restaging", "furniture replaced", _room(), _STYLE),
    _tool(
        "interior-design", "Interior Design", "room redesigned", _room(), _STYLE,
        Widget("color", "color", "Colours",
               _items("earthy-neutrals warm-tones cool-tones monochrome pastel")),
    ),
    # The docs' and the web app's slug (notes section 4); the vendor's client spells it
    # furniture-set-restyle, which the live API does not find.
    _tool("furniture-restyle", "Furniture Restyle", "furniture restyled", _room(), _STYLE),
    _tool("furniture-set-restyle", "Furniture Restyle", "furniture restyled", _room(), _STYLE,
          missing="the API answers 'tool not found' (the vendor's own notes): use "
          "furniture-restyle"),
    _tool("under-construction", "Under Construction", "unfinished room shown finished",
          _room(), _STYLE),
    _renovation("wall-change", "bedroom living-room kitchen bathroom",
                "brick-wall white-paint wallpaper concrete"),
    _renovation("floor-change", "bedroom living-room kitchen bathroom",
                "white-marble hardwood tile carpet"),
    _renovation("ceiling-change", "bedroom living-room kitchen",
                "wooden-ceiling white-paint coffered"),
    _renovation("backsplash-change", "kitchen bathroom",
                "grey-marble subway-tile mosaic white-marble"),
    # Brightness matched across a before/after pair: an exposure edit, so exempt.
    _tool(
        "darkness", "Darkness Adjustment", "brightness matched",
        Widget("darkness-factor", "darkness", "Darkness",
               _items("factor-darker factor-lighter", alters=False, factor_darker="Darker",
                      factor_lighter="Lighter"), required=True),
        alters=False, inputs="image-before image-after",
    ),
    _tool(
        "sky-change", "Sky Change", "sky replaced",
        Widget("variants", "sky", "Sky", _items("dusk-with-cloud-01 clear-blue-01 sunset-01"),
               required=True),
        Widget("style", "style", "Sky Style", _items("dusk-with-cloud clear-blue sunset")),
        Widget("sky-change-options", "enhancements", "Options", _items("flip-sky")),
        missing="the API answers 'tool not found' (the vendor's own notes)",
    ),
)  # fmt: skip
TOOLS: dict[str, Tool] = {tool.slug: tool for tool in _ALL}

# v1's image-enhancement toggles, as its catalog titles them (docs/api/AIHOMEDESIGN_API.md);
# "Remove Extra Objects" has no v3 item.
V1_TOGGLES: tuple[Item, ...] = _items(
    "add-fire-to-fireplace add-screen-to-tv remove-extra-objects",
    add_screen_to_tv="Add Screen to TV",
)

# v1's other services (docs/api/AIHOMEDESIGN_API.md section 2), as the v3 tool each is: aihd
# orders image enhancement only on v1, but a ledger imported from another client may hold them.
# service-creative-designer has no known counterpart: unknown, so counted as an alteration.
V1_SERVICES: dict[str, str] = {
    V1_SERVICE: "tool-image-enhancement",
    "service-day-to-dusk": "tool-day-to-dusk",
    "service-ai-virtual-staging": "tool-virtual-staging",
    "service-item-removal": "tool-item-removal",
}

# Edits that change how a photo looks, never what it shows: exempt from an AI disclosure
# (California AB 723 exempts lighting, colour, crop and exposure; the MLS rules of issue 26
# likewise). Straightening a converging wall is one; so are aihd's own delivery edits (resizing,
# plain bars padding to 4:3). A tool that does only these is not an alteration.
EXEMPT_EDITS: tuple[Item, ...] = _items(
    "exposure colour sharpness straightening crop resize pad-to-4-3",
    alters=False,
    resize="Resized",
    pad_to_4_3="Padded to 4:3 with Plain Bars",
)
