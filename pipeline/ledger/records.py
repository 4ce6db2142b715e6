"""What the ledger holds: a photo's states, identity and row, its order POSTs' times, runs.

Plain records shared by the runner and every store (SQLite, and PostgreSQL next).
A photo's identity is its content plus its options: one order per identity, ever.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from pipeline.bootclock import Stamp
from pipeline.errors import WindowFull

__all__ = [
    "UNSETTLED",
    "ChoiceEntry",
    "Counterpart",
    "Decision",
    "FoundPhoto",
    "KnownFile",
    "LastPost",
    "PhotoOptions",
    "PhotoRow",
    "PostTimes",
    "Review",
    "RunRecord",
    "State",
    "WindowFull",
    "WindowRule",
]


class State(enum.StrEnum):
    """Where a photo stands; see docs/SPEC.md "The ledger"."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    SUBMITTING = "submitting"
    # A POST that may have charged, not yet confirmed either way: held, shown, never re-sent
    # by itself; a run reads the order's details again and settles it (SPEC "The ledger").
    UNKNOWN = "unknown"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # same content and options as ``duplicate_of``: never paid


class Decision(enum.StrEnum):
    """A person's verdict on a completed photo (docs/SPEC.md: review adds approved / rejected)."""

    APPROVED = "approved"
    REJECTED = "rejected"


class Review(NamedTuple):
    """The latest decision on one photo, when and where it was made (and, for a rejection,
    why, when the person said)."""

    photo_id: int
    decision: Decision
    decided_at: str
    source: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PhotoOptions:
    """What is ordered for a photo: part of its identity."""

    service: str
    space: str
    enhancements: tuple[str, ...]

    def identity(self, sha256: str) -> str:
        """A stable sha256 hex of the content hash and these options."""
        text = f"v1\x1f{sha256}\x1f{_options_text(self.service, self.space, self.enhancements)}"
        return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=256)
def _options_text(service: str, space: str, enhancements: tuple[str, ...]) -> str:
    # Normalised here so a caller's ordering or case can never split one identity. Cached: a
    # re-run checks the identity of every photo, and a ledger holds few option sets.
    titles = "\x1e".join(sorted(e.casefold() for e in enhancements))
    return f"{service}\x1f{space}\x1f{titles}"


@dataclass(frozen=True, slots=True)
class ChoiceEntry:
    """A catalog entry a photo's identity names: ``key`` is the spelling identities hold; the
    rest are the latest spellings the catalog gave (None: not seen yet). A rename of one of
    them is the same choice (pipeline/ordering/choices.py)."""

    kind: str  # "space" or "item"
    scope: str  # the service; an item's: service, unit separator, its space's key
    key: str
    entry_id: str | None
    name: str | None
    title: str | None


@dataclass(frozen=True, slots=True)
class Counterpart:
    """The same product ordered through the other API version: a photo of this content paid
    with ``options`` is not ordered again; ``held`` (a reason) when the two choices cannot be
    told apart for sure: then it is held, not ordered, until `aihd reorder`."""

    options: PhotoOptions
    held: str = ""


# Why a photo is held whose counterpart's order is not settled: it may have been charged.
UNSETTLED = (
    "ordered through the other API version, and that order's outcome is not settled yet (it "
    "may have been charged): run that manifest again to settle it"
)


@dataclass(frozen=True, slots=True)
class FoundPhoto:
    """A file the runner found and hashed."""

    path: str
    folder: str
    size: int
    mtime_ns: int
    sha256: str
    options: PhotoOptions
    manifest: str = ""  # the manifest whose folder found it
    counterparts: tuple[Counterpart, ...] = ()  # its options through the other API version


@dataclass(frozen=True, slots=True)
class WindowRule:
    """The account's order window, as the ledger enforces it across runs and processes."""

    orders: int
    per_seconds: float
    answer_within: float  # an order POST unanswered this long after its intent counts as
    # answered then (its run was killed): a bound on the request, not a guess
    account: str = ""  # whose window: API endpoint and account name (accounts sharing a ledger
    # file each have their own; posts recorded before accounts were, '', count in every one)


class PhotoRow(NamedTuple):
    """One photo as the ledger holds it.

    A NamedTuple, not a dataclass: a run builds a few per photo, and a frozen dataclass of 22
    fields cost more interpreter work to build than the SQL that read it.
    """

    id: int
    path: str
    folder: str
    sha256: str
    size: int
    mtime_ns: int
    service: str
    space: str
    enhancements: tuple[str, ...]
    identity: str
    state: State
    order_id: str | None
    image_id: str | None
    eta: int | None
    submitted_at: str | None
    result_urls: tuple[str, ...]
    output_paths: tuple[str, ...]
    attempts: int
    error: str | None
    retryable: bool
    duplicate_of: int | None
    updated_at: str
    charged: bool  # the API charged for this photo: never ordered again but by `aihd reorder`


class KnownFile(NamedTuple):
    """A current photo as a re-run needs it: is the file unchanged, and where does it stand?"""

    size: int
    mtime_ns: int
    sha256: str
    identity: str
    state: State
    id: int


class LastPost(NamedTuple):
    """A photo's latest order POST: its row, and the latest moment it may have left.

    ``sent_by`` is its intent's moment plus the time the sender allowed itself to send it
    (``send_within``): a sender checks on the boot clock that its intent is that fresh just
    before the request leaves, and sends nothing otherwise. Settling counts from it.
    """

    id: int
    sent_by: Stamp


class PostTimes(NamedTuple):
    """One order POST's intent and answer: on the boot clock of ``boot``, and Unix time."""

    boot: str
    intent_clock: float
    intent_wall: float
    answer_clock: float | None
    answer_wall: float | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One `aihd` command that ran against the ledger."""

    id: int
    command: str
    started_at: str
    ended_at: str | None
    outcome: str | None
    summary: dict[str, object]
