"""The review sheet: the photos of one or more manifests as the review page and desk show them.

Listing by listing in natural order (``5-walnut-way`` before ``48-maple-ave``), exteriors first,
each folder's photos by natural file name; each tool and toggle in words (pipeline.api.tools),
never a slug; every hint a whole command, quoted for a shell. Where the images are is the
caller's (``Images``): thumbnails beside a static page, or the desk's own URLs.

Names reach the page as ``shown()`` (a byte that is not UTF-8 as ``\\xNN``): what a person
reads, and what the script matches folders and listings by. A photo is found again by its id,
a listing by its key (``listing``), never by a name the page was given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from pipeline.api.tools import V1_SERVICE, Described, describe, space_label
from pipeline.api.v3_slugs import build_spec, identity_parts
from pipeline.filenames import shell_join, shown
from pipeline.ledger import Ledger, PhotoRow, Review, State
from pipeline.manifest.listings import Listing, is_exterior, listings, natural_key
from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.review.decisions import manifest_rows, reorder_command

__all__ = ["Images", "Sheet", "progress_counts"]

_PAID = frozenset({State.SUBMITTING, State.UNKNOWN, State.SUBMITTED, State.COMPLETED})
_WAITING = frozenset({State.SUBMITTING, State.SUBMITTED})
_TO_ORDER = frozenset({State.PENDING, State.UPLOADED})


class Images(Protocol):
    """Where a photo's images are for the page: ``side`` is "before" or "after"."""

    def thumb(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None: ...
    def full(self, manifest: int, row: PhotoRow, source: str, side: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a manifest folder's photos go on the sheet."""

    manifest: int
    listing: str  # the listing's key: manifest number and name
    folder: FolderSpec
    rank: int  # the folder's place among all folders of the sheet


class Sheet:
    """The sheet of ``manifests`` (one ledger: one account's), its images from ``images``;
    ``offline`` for the static page (the desk leaves out what only an export needs)."""

    def __init__(
        self, manifests: Sequence[Manifest], images: Images, *, offline: bool = True
    ) -> None:
        self.manifests = tuple(manifests)
        self.images = images
        self.offline = offline  # the static page: what its export and hints need too
        ordered = sorted(
            (
                (m, listing)
                for m, manifest in enumerate(self.manifests)
                for listing in listings(manifest)
            ),
            key=lambda pair: (natural_key(pair[1].name), pair[0]),
        )
        self._places: dict[tuple[int, str], _Place] = {}
        self._listings: list[dict[str, object]] = []
        self._by_key: dict[str, tuple[int, Listing]] = {}
        for m, listing in ordered:
            key = f"{m}:{shown(listing.name)}"
            while key in self._by_key:  # two names alike but for bytes shown as \xNN
                key += "'"
            names = []
            for folder in listing.folders:
                if (m, folder.name) not in self._places:
                    self._places[m, folder.name] = _Place(m, key, folder, len(self._places))
                    names.append(shown(folder.name))
            self._listings.append(
                {"key": key, "name": shown(listing.name), "manifest": m, "folders": names}
            )
            self._by_key[key] = (m, listing)

    def rows(self, ledger: Ledger) -> list[tuple[int, PhotoRow]]:
        """The manifests' photos in the ledger, each once, in the sheet's order."""
        seen: dict[int, tuple[int, PhotoRow]] = {}
        for m, manifest in enumerate(self.manifests):
            for row in manifest_rows(manifest, ledger):
                if (m, row.folder) in self._places:
                    seen.setdefault(row.id, (m, row))
        return sorted(seen.values(), key=lambda pair: self._order(*pair))

    def _order(self, m: int, row: PhotoRow) -> tuple[object, ...]:
        """The folder's place, then the photo's path below its folder, read naturally."""
        place = self._places[m, row.folder]
        below = row.path.removeprefix(str(place.folder.path)).lstrip("/")
        return (place.rank, _natural(below), row.id)

    def document(self, ledger: Ledger, **extra: object) -> dict[str, object]:
        """Everything a page shows, as JSON-ready values."""
        reviews = ledger.reviews()
        entries = [(m, row, reviews.get(row.id)) for m, row in self.rows(ledger)]
        return self.compose(ledger.path, entries, ledger.titles(), **extra)

    def compose(
        self,
        ledger_path: str,
        entries: Sequence[tuple[int, PhotoRow, Review | None]],
        spelled: dict[str, str],
        **extra: object,
    ) -> dict[str, object]:
        """The page's document from photos read already (in the sheet's order), with the v1
        toggles as the catalog spells them (``ledger.titles()``)."""
        first = self.manifests[0]
        return {
            "manifest": shown(str(first.path)),
            "ledger": shown(ledger_path),
            "generated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "collect_command": shell_join(["aihd", "collect", str(first.path)]),
            "manifests": [self._manifest(m) for m in self.manifests],
            "listings": self._listings,
            "folders": [self._folder(place) for place in self._places.values()],
            "photos": [self.photo(m, row, review, spelled) for m, row, review in entries],
            "progress": progress_counts([row for _, row, _ in entries]),
            **extra,
        }

    def listing(self, key: str) -> tuple[int, Listing] | None:
        """The listing of that key (manifest number and name), with its manifest's number."""
        return self._by_key.get(key)

    def photo(
        self, m: int, row: PhotoRow, review: Review | None, spelled: dict[str, str]
    ) -> dict[str, object]:
        """One photo as the page shows it."""
        place = self._places[m, row.folder]
        result = row.output_paths[0] if row.output_paths else None
        tool, space, options = _words(
            row.service, row.space, tuple(spelled.get(e, e) for e in row.enhancements)
        )
        images = self.images
        photo: dict[str, object] = {
            "id": row.id,
            "name": shown(os.path.basename(row.path)),
            "path": shown(row.path),
            "folder": shown(row.folder),
            "listing": place.listing,
            "manifest_index": m,
            "tool": tool,
            "space": space,
            "enhancements": options,
            "state": row.state.value,
            "order_id": row.order_id,
            "cost": 1 if row.state in _PAID else 0,  # credits: one per order (service.credit: 1)
            "error": row.error,
            "before": images.thumb(m, row, row.path, "before"),
            "after": images.thumb(m, row, result, "after") if result is not None else None,
            "original_url": images.full(m, row, row.path, "before"),
            "result_url": images.full(m, row, result, "after") if result is not None else None,
            "decision": review.decision.value if review is not None else None,
            "reason": review.reason if review is not None else None,
            "decided_at": review.decided_at if review is not None else None,
            "version": row.updated_at,
        }
        if self.offline:
            # The export's check that a decision is this ledger's photo, and the hint a
            # static page can only show (the desk orders again itself).
            photo["sha256"] = row.sha256
            photo["reorder_command"] = reorder_command(self.manifests[m], [row.path])
        return photo

    def _manifest(self, manifest: Manifest) -> dict[str, object]:
        where = str(manifest.path)
        return {
            "path": shown(where),
            "name": shown(manifest.path.name),
            "run_command": shell_join(["aihd", "run", where]),
            "collect_command": shell_join(["aihd", "collect", where]),
            "deliver_command": shell_join(["aihd", "deliver", where]),
        }

    def _folder(self, place: _Place) -> dict[str, object]:
        words = _folder_words(self.manifests[place.manifest], place.folder)
        return {
            "name": shown(place.folder.name),
            "listing": place.listing,
            "tool": words.tool,
            "space": _space_words(words.space),
            "exterior": is_exterior(place.folder),
            "enhancements": list(words.options),
        }


@lru_cache(maxsize=4096)
def _words(service: str, space: str, enhancements: tuple[str, ...]) -> tuple[str, str, list[str]]:
    """A photo's tool, space and options in words: few kinds per sheet, so asked once each."""
    words = describe(service, space, enhancements)
    return words.tool, _space_words(words.space), list(words.options)


@lru_cache(maxsize=200_000)
def _natural(text: str) -> tuple[tuple[tuple[int, int, str], ...], str]:
    return natural_key(text)


def _folder_words(manifest: Manifest, folder: FolderSpec) -> Described:
    """A folder's tool and options in words (the manifest was checked when it was loaded)."""
    if manifest.api != "v3":
        return describe(V1_SERVICE, folder.space, folder.enhancements)
    spec = build_spec(
        folder.tool, space=folder.space, enhancements=folder.enhancements, **dict(folder.choices)
    )
    return describe(spec.service, *identity_parts(spec))


def _space_words(space: str) -> str:
    """ "space-ie-indoor" and "indoor" alike read "Indoor"."""
    words = space_label(space)
    return words[:1].upper() + words[1:]


def progress_counts(rows: Sequence[PhotoRow]) -> dict[str, int]:
    """The day's progress: photos ordered today, waiting for results, collected, failed, and
    still to order (all of them now, but "ordered today")."""
    today = _today_in_utc()
    counts = {"ordered_today": 0, "waiting": 0, "collected": 0, "failed": 0, "to_order": 0}
    for row in rows:
        if row.state in _WAITING:
            counts["waiting"] += 1
        elif row.state is State.COMPLETED:
            counts["collected"] += 1
        elif row.state is State.FAILED:
            counts["failed"] += 1
        elif row.state in _TO_ORDER:
            counts["to_order"] += 1
        if row.submitted_at and _within(row.submitted_at, today):
            counts["ordered_today"] += 1
    return counts


def _today_in_utc() -> tuple[str, str]:
    """Today, here, from midnight to midnight, as the ledger writes times (ISO, in UTC)."""
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight.astimezone(UTC)
    end = (midnight + timedelta(days=1)).astimezone(UTC)
    return start.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds")


def _within(stamp: str, day: tuple[str, str]) -> bool:
    if stamp.endswith("+00:00") and len(stamp) == len(day[0]):
        return day[0] <= stamp < day[1]  # the ledger's own form: text compares as time
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    start, end = (datetime.fromisoformat(edge) for edge in day)
    return start <= moment < end
