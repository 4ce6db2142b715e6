"""The live catalog: spaces and enhancement toggles of the service, resolved from names to ids.

The API's ids are opaque and known only at run time (unknown 1 in the API notes), so the
manifest names things as a user would ("indoor", "Add Fire to Fireplace") and this module
finds them, in any case, or says which names are valid. Fetched once per run.
"""

from __future__ import annotations

__all__ = [
    "Catalog",
    "Enhancement",
    "ResolvedOptions",
    "photo_options",
    "read_catalog",
    "resolve_folders",
    "resolve_live",
    "resolve_v3",
    "v3_options",
]

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline import api
from pipeline.api import v3_slugs
from pipeline.api.factory import AnyVersion
from pipeline.api.records import OrderSpec
from pipeline.api.v1 import ApiClient, Item, Space, Widget
from pipeline.errors import (
    ApiUnreachable,
    CatalogError,
    ConnectFailed,
    RequestRejected,
    ToolOptionError,
    TransientError,
)
from pipeline.ledger import Counterpart, PhotoOptions
from pipeline.manifest.listings import listing_name
from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.retry import Backoff, retrying

log = logging.getLogger("aihd")


@dataclass(frozen=True, slots=True)
class Enhancement:
    """An enhancement resolved against the catalog: its widget, item and title."""

    widget_id: str
    item_id: str
    title: str


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """What an order is submitted with."""

    space: Space
    enhancements: tuple[Enhancement, ...]
    v3: OrderSpec | None = None  # a v3 photo's tool, widgets and project (pipeline.api.v3_slugs)
    # The options part of its identity, as the ledger keys the catalog's entries (choices.py);
    # None: the catalog's spellings of today.
    choice: PhotoOptions | None = None
    counterparts: tuple[Counterpart, ...] = ()  # the same product through the other version
    # Made once: a run asks for it twice per photo (upload, order).
    _spec: OrderSpec | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.v3 or OrderSpec(api.SERVICE, self.space.name, tuple(self.selected_widgets))
        object.__setattr__(self, "_spec", spec)

    @property
    def spec(self) -> OrderSpec:
        """What the client sends for a photo of these options."""
        assert self._spec is not None
        return self._spec

    @property
    def service(self) -> str:
        """The ledger's service: v1's service name, or ``v3:<tool slug>``."""
        return api.SERVICE if self.v3 is None else self.v3.service

    @property
    def selected_widgets(self) -> list[api.SelectedWidget]:
        # Several items of one widget are sent as several {id, item_id} entries with the same
        # widget id (our reading; the docs show one). The sandbox accepts that shape.
        return [{"id": e.widget_id, "item_id": e.item_id} for e in self.enhancements]

    @property
    def enhancement_titles(self) -> tuple[str, ...]:
        """Canonical titles, casefolded and sorted: part of a photo's identity in the ledger."""
        return tuple(sorted({e.title.casefold() for e in self.enhancements}))


class Catalog:
    """Spaces of the service and, per space, its widgets and items."""

    def __init__(
        self, service: str, spaces: Sequence[Space], widgets: dict[str, list[Widget]]
    ) -> None:
        self.service = service
        self.spaces = tuple(spaces)
        self.widgets = widgets  # space name -> widgets

    @classmethod
    async def fetch(
        cls, client: ApiClient, service: str = api.SERVICE, backoff: Backoff | None = None
    ) -> Catalog:
        """Spaces, then each space's widgets; each call retried on its own (``backoff``),
        so a catalog that fails now and then is read whole: retrying the read as one unit
        would need every call of one try to succeed at once."""
        tries = backoff or Backoff(attempts=1)
        spaces = [s for s in await retrying(lambda: client.spaces(service), tries) if s.is_active]
        widgets: dict[str, list[Widget]] = {}
        for space in spaces:
            read = functools.partial(client.widgets, space.name, service)
            widgets[space.name] = await retrying(read, tries)
        return cls(service, spaces, widgets)

    def resolve_space(self, name: str, *, where: str = "") -> Space:
        wanted = name.strip().casefold()
        for space in self.spaces:
            if wanted in (space.name.casefold(), space.title.casefold(), space.id.casefold()):
                return space
        valid = ", ".join(f"{s.title.lower() or s.name} ({s.name})" for s in self.spaces)
        raise CatalogError(
            f"{where}space {name!r} is not a space of {self.service}; "
            f"valid spaces: {valid or 'none (the catalog lists no active space)'}"
        )

    def resolve(
        self, space_name: str, enhancements: Sequence[str], *, where: str = "", where_enh: str = ""
    ) -> ResolvedOptions:
        """Resolve a space and its toggles; raise CatalogError listing valid names if unknown."""
        space = self.resolve_space(space_name, where=where)
        widgets = self.widgets.get(space.name, [])
        chosen: dict[str, Enhancement] = {}
        for wanted in enhancements:
            found = _find_item(widgets, wanted)
            if found is None:
                valid = ", ".join(f"{i.title!r}" for w in widgets for i in w.items)
                raise CatalogError(
                    f"{where_enh or where}enhancement {wanted!r} is not offered for space "
                    f"{space.title or space.name!r}; valid: {valid or 'none'} "
                    "(titles in any case, or item ids)"
                )
            widget, item = found
            chosen[item.id] = Enhancement(widget.id, item.id, item.title)
        picked_widgets = {e.widget_id for e in chosen.values()}
        for widget in widgets:
            if not widget.is_optional and widget.id not in picked_widgets:
                choices = ", ".join(repr(i.title) for i in widget.items)
                raise CatalogError(
                    f"{where_enh or where}the catalog requires one of {widget.title!r} for space "
                    f"{space.title or space.name!r}: add one of {choices} to enhancements"
                )
        return ResolvedOptions(space, tuple(chosen.values()))

    def describe(self) -> list[tuple[Space, list[Widget]]]:
        return [(s, self.widgets.get(s.name, [])) for s in self.spaces]


def _find_item(widgets: Sequence[Widget], wanted: str) -> tuple[Widget, Item] | None:
    key = wanted.strip().casefold()
    for widget in widgets:
        for item in widget.items:
            if key in (item.title.casefold(), item.id.casefold()):
                return widget, item
    return None


def v3_options(spec: OrderSpec) -> ResolvedOptions:
    """A v3 photo's options as the runner keeps them: its area or room as the space, and
    every widget item slug as an enhancement (with ``v3:<tool slug>``, its identity)."""
    space, items = v3_slugs.identity_parts(spec)
    enhancements = tuple(Enhancement(w, i, i) for w, slugs in spec.widgets for i in slugs)
    assert {e.item_id for e in enhancements} == set(items)
    return ResolvedOptions(
        Space(id=space, name=space, title=space, is_active=True), enhancements, spec
    )


def resolve_v3(
    folders: Sequence[tuple[str, str, Sequence[str], Sequence[tuple[str, str]], str]],
    live: Sequence[str] | None,
    wheres: Sequence[str],
) -> list[ResolvedOptions]:
    """Each folder's v3 options: (tool, space, enhancements, choices, project address), where
    choices are the folder's room, style, sky, ... as written (``FolderSpec.choices``).

    ``live``: the tools list's active slugs, or None when it could not be had (then the
    documented slugs are trusted, but for a tool the API is known not to find). A tool the list
    lacks is a CatalogError listing those it has.
    """
    resolved = []
    for (tool, space, enhancements, choices, project), where in zip(folders, wheres, strict=True):
        try:
            spec = v3_slugs.build_spec(
                tool, space=space, enhancements=enhancements, project=project, **dict(choices)
            )
            v3_slugs.check_live(spec.tool, live)
        except ToolOptionError as exc:
            raise CatalogError(f"{where}{exc}") from None
        resolved.append(v3_options(spec))
    return resolved


async def resolve_live(
    manifest: Manifest, client: AnyVersion | ApiClient, backoff: Backoff
) -> list[tuple[FolderSpec, ResolvedOptions]]:
    """Each folder's options, checked against the live API of the manifest's version: v1's
    catalog, or v3's tools list (where it can be had); errors at file:line, nothing spent."""
    if manifest.api != "v3" or not isinstance(client, AnyVersion):
        v1 = client.v1 if isinstance(client, AnyVersion) else client
        return resolve_folders(manifest, await read_catalog(v1, backoff))
    live: list[str] | None
    try:
        live = await retrying(client.v3.tools, backoff)
    except (TransientError, ConnectFailed, RequestRejected) as exc:
        log.warning("the v3 tools list could not be read (%s): the documented slugs are used", exc)
        live = None
    wheres = [
        f"{manifest.path}:{folder.line_of('tool')}: folder {folder.name!r}: "
        for folder in manifest.folders
    ]
    chosen = [
        (f.tool, f.space, f.enhancements, f.choices, f.project or listing_name(f))
        for f in manifest.folders
    ]
    return list(zip(manifest.folders, resolve_v3(chosen, live, wheres), strict=True))


async def read_catalog(client: ApiClient, backoff: Backoff) -> Catalog:
    """The live catalog, each read retried; exit 6 when the API stays out of reach."""
    try:
        return await Catalog.fetch(client, backoff=backoff)
    except TransientError as exc:
        raise ApiUnreachable(
            f"the API could not be reached at {client.base_url} after {backoff.attempts} "
            f"tries ({exc}); nothing was spent or lost: run the same command again later"
        ) from exc


def resolve_folders(
    manifest: Manifest, catalog: Catalog
) -> list[tuple[FolderSpec, ResolvedOptions]]:
    """Each folder's space and toggles against the live catalog, errors at file:line."""
    resolved = []
    for folder in manifest.folders:
        where = f"{manifest.path}:{folder.space_line}: folder {folder.name!r}: "
        where_enh = f"{manifest.path}:{folder.enhancements_line}: folder {folder.name!r}: "
        options = catalog.resolve(
            folder.space, folder.enhancements, where=where, where_enh=where_enh
        )
        resolved.append((folder, options))
    return resolved


def photo_options(options: ResolvedOptions) -> PhotoOptions:
    """The options part of a photo's identity in the ledger."""
    if options.choice is not None:
        return options.choice
    return PhotoOptions(options.service, options.space.name, options.enhancement_titles)
