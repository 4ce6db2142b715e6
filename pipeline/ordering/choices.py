"""A photo's options as the user chose them, not as one server spells them (SPEC "The ledger").

The v1 catalog gives each space an id, a name (its slug) and a title, and each item an id and
a title; the API may rename any of them between nights. A photo's identity holds a ``key`` per
entry instead of the spelling of the day: the ledger keeps every entry with its latest
spellings (``catalog_choices``), and a live entry that agrees with a kept one on any spelling
is that choice, so a rename of one of them (the others unchanged) orders nothing again. A new
entry's key is its name (a space) or casefolded title (an item): what identities always held,
so the identities of existing ledgers do not change.

Two live entries that agree with one kept entry equally well, or one live entry that agrees
equally with two, cannot be told apart: that is a CatalogError (nothing spent), never a guess.
"""

from __future__ import annotations

__all__ = [
    "SCOPE_SEPARATOR",
    "Live",
    "choose",
    "item_scope",
    "live_entries",
    "match",
    "resolve_chosen",
]

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pipeline.api.factory import AnyVersion
from pipeline.api.v1 import ApiClient
from pipeline.errors import CatalogError
from pipeline.ledger import ChoiceEntry, Ledger, PhotoOptions
from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.ordering.catalog import (
    Catalog,
    ResolvedOptions,
    read_catalog,
    resolve_folders,
    resolve_live,
)
from pipeline.retry import Backoff

SCOPE_SEPARATOR = "\x1f"  # an item's scope: its service, then its space's key


@dataclass(frozen=True, slots=True)
class Live:
    """A catalog entry as the catalog spells it now."""

    kind: str  # "space" or "item"
    scope: str
    entry_id: str
    name: str | None  # items have none
    title: str

    def describe(self) -> str:
        named = f", name {self.name!r}" if self.name is not None else ""
        return f"{self.kind} {self.title!r} (id {self.entry_id!r}{named})"


def _agreement(live: Live, kept: ChoiceEntry) -> int:
    """How many spellings the two share: ids exactly, names and titles in any case."""
    same = int(kept.entry_id is not None and kept.entry_id == live.entry_id)
    for mine, theirs in ((live.name, kept.name), (live.title, kept.title)):
        if mine is not None and theirs is not None:
            same += int(mine.casefold() == theirs.casefold())
    return same


def _natural_key(live: Live) -> str:
    return live.name if live.kind == "space" and live.name is not None else live.title.casefold()


def match(
    kept: Sequence[ChoiceEntry], live: Sequence[Live]
) -> tuple[dict[Live, str], list[ChoiceEntry]]:
    """Each live entry's key, and the entries to keep: new ones, and known ones respelled."""
    groups: dict[tuple[str, str], list[ChoiceEntry]] = defaultdict(list)
    for entry in kept:
        groups[(entry.kind, entry.scope)].append(entry)
    keys: dict[Live, str] = {}
    changed: list[ChoiceEntry] = []
    for (kind, scope), lives in _grouped(live).items():
        known = groups.get((kind, scope), [])
        paired = _pair(lives, known)
        taken = {entry.key for entry in known}
        for now in lives:
            found = paired.get(now)
            if found is None:
                key = _natural_key(now)
                if key in taken:  # a kept entry, all of whose spellings changed, held it
                    key = f"{key}\x1d{now.entry_id}"
                taken.add(key)
                keys[now] = key
                changed.append(ChoiceEntry(kind, scope, key, now.entry_id, now.name, now.title))
                continue
            keys[now] = found.key
            respelled = ChoiceEntry(
                kind, scope, found.key, now.entry_id, now.name or found.name, now.title
            )
            if respelled != found:
                changed.append(respelled)
    return keys, changed


def _grouped(live: Iterable[Live]) -> dict[tuple[str, str], list[Live]]:
    groups: dict[tuple[str, str], list[Live]] = defaultdict(list)
    for entry in live:
        if entry not in groups[(entry.kind, entry.scope)]:
            groups[(entry.kind, entry.scope)].append(entry)
    return groups


def _pair(lives: Sequence[Live], known: Sequence[ChoiceEntry]) -> dict[Live, ChoiceEntry]:
    """Pairs by agreement, the best first; a tie between two candidates is refused."""
    scored = [(_agreement(live, entry), live, entry) for live in lives for entry in known]
    paired: dict[Live, ChoiceEntry] = {}
    used: set[str] = set()
    for level in sorted({score for score, _, _ in scored if score}, reverse=True):
        here = [
            (live, entry)
            for score, live, entry in scored
            if score == level and live not in paired and entry.key not in used
        ]
        for live, entry in here:
            rivals = [e.key for other, e in here if other == live and e.key != entry.key]
            others = [other for other, e in here if e.key == entry.key and other != live]
            if rivals or others:
                raise CatalogError(
                    f"the catalog's {live.describe()} matches "
                    + (
                        f"{len(rivals) + 1} choices this ledger keeps equally well"
                        if rivals
                        else f"the choice {entry.key!r} as well as its {others[0].describe()}"
                    )
                    + ": which photos were ordered with it cannot be told; nothing was spent. "
                    "The catalog changed in a way aihd cannot follow: contact support, or "
                    "check `aihd catalog`"
                )
        for live, entry in here:
            paired[live] = entry
            used.add(entry.key)
    return paired


def live_entries(catalog: Catalog, space_keys: dict[str, str] | None = None) -> list[Live]:
    """The catalog's spaces, or (given their keys by space name) every space's items."""
    if space_keys is None:
        return [Live("space", catalog.service, s.id, s.name, s.title) for s in catalog.spaces]
    return [
        Live("item", item_scope(catalog.service, space_keys[space.name]), i.id, None, i.title)
        for space, widgets in catalog.describe()
        for widget in widgets
        for i in widget.items
    ]


def item_scope(service: str, space_key: str) -> str:
    """The scope of a space's items: the same title in two spaces may be two entries."""
    return f"{service}{SCOPE_SEPARATOR}{space_key}"


def choose(
    catalog: Catalog,
    resolved: Sequence[tuple[object, ResolvedOptions]],
    ledger: Ledger | None,
    *,
    record: bool,
) -> list[ResolvedOptions]:
    """The resolved options with the keys their identities hold; ``record``: keep new entries
    and new spellings in the ledger (a run does; a plan only reads)."""
    kept = ledger.catalog_choices() if ledger is not None else []
    space_keys, spaces_changed = match(kept, live_entries(catalog))
    by_name = {live.name or "": key for live, key in space_keys.items()}
    item_keys, items_changed = match(kept, live_entries(catalog, by_name))
    if record and ledger is not None and (spaces_changed or items_changed):
        ledger.keep_catalog_choices([*spaces_changed, *items_changed])
    by_item = {(live.scope, live.entry_id): key for live, key in item_keys.items()}
    out = []
    for _, options in resolved:
        space_key = by_name[options.space.name]
        scope = item_scope(catalog.service, space_key)
        items = tuple(sorted({by_item[(scope, e.item_id)] for e in options.enhancements}))
        out.append(replace(options, choice=PhotoOptions(options.service, space_key, items)))
    return out


async def resolve_chosen(
    manifest: Manifest,
    client: AnyVersion | ApiClient,
    backoff: Backoff,
    ledger: Ledger | None,
    *,
    record: bool,
) -> list[tuple[FolderSpec, ResolvedOptions]]:
    """Each folder's options, checked against the live API (catalog.resolve_live), with the
    keys their identities hold and their counterparts through the other API version."""
    from pipeline.ordering.crossversion import with_counterparts

    if manifest.api != "v3" or not isinstance(client, AnyVersion):
        v1 = client.v1 if isinstance(client, AnyVersion) else client
        catalog = await read_catalog(v1, backoff)
        resolved = resolve_folders(manifest, catalog)
        chosen = choose(catalog, resolved, ledger, record=record)
    else:
        resolved = await resolve_live(manifest, client, backoff)
        chosen = [options for _, options in resolved]
    kept = ledger.catalog_choices() if ledger is not None else []
    return [
        (folder, with_counterparts(options, kept))
        for (folder, _), options in zip(resolved, chosen, strict=True)
    ]
