"""One identity across API versions: image enhancement through v1 and through v3 is one product.

A photo charged for v1 image enhancement is not ordered again for v3 image enhancement with the
same space and toggles, nor the other way round (SPEC "The ledger"); only `aihd reorder` pays
again. The two versions spell the choice differently, so each folder's options carry their
*counterparts*: the options of the same choice through the other version, whose identities
``record_found`` looks for among charged photos (sqlite_found.py). The map, and where each
part of it comes from, is in docs/identity-across-api-versions.md:

- v1 space "Indoor" / "outdoor" is v3's area item ``indoor`` / ``outdoor``; a v1 space is read
  as an area when one of its spellings names exactly one of the two words;
- v1 toggle "Add Fire to Fireplace" / "Add Screen to TV" is v3's enhancement option
  ``add-fire-to-fireplace`` / ``add-screen-to-tv`` (the same words);
- "Remove Extra Objects" has no v3 counterpart.

Where a counterpart is not confirmed (a v1 toggle without one, a v1 space that names no area),
the v3 photo paid through v1 is *held*: not ordered, shown with the reason, until
`aihd reorder` says to pay again. Never a guess that spends.
"""

from __future__ import annotations

__all__ = [
    "IE_OPTIONS",
    "SPACES",
    "V1_SERVICE",
    "V3_SERVICE",
    "area_of",
    "option_of",
    "version_of",
    "with_counterparts",
]

from collections.abc import Iterable, Sequence
from dataclasses import replace
from itertools import combinations, product

from pipeline import api
from pipeline.api.tools import TOOLS, slugify
from pipeline.api.v3_slugs import DEFAULT_TOOL, build_spec, identity_parts
from pipeline.ledger import ChoiceEntry, Counterpart, PhotoOptions
from pipeline.ordering.catalog import ResolvedOptions, photo_options
from pipeline.ordering.choices import item_scope

V1_SERVICE = api.SERVICE
_V3_SPEC = build_spec(DEFAULT_TOOL)
V3_SERVICE = _V3_SPEC.service  # v3:tool-image-enhancement


def _image_enhancement(key: str) -> tuple[str, ...]:
    """v3 image enhancement's values for a manifest key, as the tool table knows them."""
    widget = TOOLS["tool-image-enhancement"].widget(key)
    assert widget is not None, key
    return tuple(item.value for item in widget.items)


SPACES = _image_enhancement("space")  # indoor, outdoor
IE_OPTIONS = _image_enhancement("enhancements")  # add-fire-to-fireplace, add-screen-to-tv
_MAX_EXTRAS = 4  # v1 toggles without a counterpart, combined (image enhancement has one)


def version_of(service: str) -> str:
    """ "v1" or "v3": the API version a ledger row's service was ordered through."""
    return "v3" if service.startswith("v3:") else "v1"


def area_of(spellings: Iterable[str | None]) -> str | None:
    """The v3 area a v1 space stands for: the one of indoor/outdoor its spellings name (as
    words: "Indoor", "space-ie-indoor"), or None when they name neither or both."""
    words: set[str] = set()
    for spelling in spellings:
        if spelling:
            words |= set(slugify(spelling).split("-"))
    named = [area for area in SPACES if area in words]
    return named[0] if len(named) == 1 else None


def option_of(title: str) -> str | None:
    """The v3 enhancement option a v1 toggle is ("Add Fire to Fireplace" ->
    add-fire-to-fireplace), or None: no confirmed counterpart."""
    value = slugify(title)
    return value if value in IE_OPTIONS else None


def with_counterparts(options: ResolvedOptions, kept: Sequence[ChoiceEntry]) -> ResolvedOptions:
    """The options with their counterparts through the other version (none for other tools)."""
    chosen = photo_options(options)
    if chosen.service == V3_SERVICE and options.v3 is not None:
        found = _v1_counterparts(chosen.space, _v3_values(options), kept)
    elif chosen.service == V1_SERVICE:
        found = _v3_counterpart(options, chosen)
    else:
        return options
    return replace(options, counterparts=tuple(found))


def _v3_values(options: ResolvedOptions) -> set[str]:
    """The enhancement option values of a v3 image enhancement order (the area left out)."""
    assert options.v3 is not None
    values = set()
    for widget, items in options.v3.widgets:
        if not widget.startswith("widget-area-"):
            values |= {item.removeprefix("item-").removesuffix(f"-{widget}") for item in items}
    return values


def _v3_counterpart(options: ResolvedOptions, chosen: PhotoOptions) -> list[Counterpart]:
    """A v1 photo's v3 counterpart: only when its space names an area and every toggle has
    a counterpart (v3 cannot have ordered anything else)."""
    space = options.space
    area = area_of((chosen.space, space.name, space.title))
    values = [option_of(e.title) for e in options.enhancements]
    if area is None or None in values:
        return []
    spec = build_spec(DEFAULT_TOOL, space=area, enhancements=[v for v in values if v])
    v3_space, items = identity_parts(spec)
    return [Counterpart(PhotoOptions(spec.service, v3_space, items))]


def _v1_counterparts(area: str, values: set[str], kept: Sequence[ChoiceEntry]) -> list[Counterpart]:
    """Every v1 choice the ledger knows that a v3 photo of this area and options may have
    been paid as: the same choice, or held (with why) where it cannot be told apart."""
    found: list[Counterpart] = []
    for space in (e for e in kept if e.kind == "space" and e.scope == V1_SERVICE):
        space_area = area_of((space.key, space.name, space.title))
        if space_area not in (area, None):
            continue
        scope = item_scope(V1_SERVICE, space.key)
        toggles = [e for e in kept if e.kind == "item" and e.scope == scope]
        by_value: dict[str, list[str]] = {}
        extras: list[ChoiceEntry] = []
        for toggle in toggles:
            value = option_of(toggle.title or toggle.key)
            if value is None:
                extras.append(toggle)
            else:
                by_value.setdefault(value, []).append(toggle.key)
        if not values <= set(by_value):
            continue  # a v1 photo of that space cannot have had these toggles
        unsure = ""
        if space_area is None:
            shown = space.title or space.name or space.key
            unsure = f"paid through v1 in space {shown!r}, which names no v3 area (indoor, outdoor)"
        for base in product(*(by_value[v] for v in sorted(values))):
            for size in range(min(len(extras), _MAX_EXTRAS) + 1):
                for more in combinations(extras, size):
                    held = unsure
                    if more:
                        names = ", ".join(repr(e.title or e.key) for e in more)
                        held = (
                            f"paid through v1 with {names}, which v3 image enhancement has no "
                            "counterpart for"
                        )
                    keys = tuple(sorted({*base, *(e.key for e in more)}))
                    found.append(Counterpart(PhotoOptions(V1_SERVICE, space.key, keys), held))
    return sorted(found, key=lambda c: c.held != "")
