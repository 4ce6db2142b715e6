"""The ledger: what has been found, uploaded, paid for and downloaded, safe across crashes.

This module is the interface: the records a ledger holds and the ``Ledger`` protocol the runner
codes against, so a PostgreSQL ledger shared by many machines can come next without touching
the runner. ``pipeline/sqlite_ledger.py`` is the one store today: one SQLite file (WAL,
``synchronous=FULL``) whose every change is on disk when the call returns. A photo's identity is
its content plus its options: one order per identity, ever.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from pipeline.sqlite_ledger import SqliteLedger

__all__ = [
    "FoundPhoto",
    "KnownFile",
    "Ledger",
    "PhotoOptions",
    "PhotoRow",
    "RunRecord",
    "State",
    "open_ledger",
]


class State(enum.StrEnum):
    """Where a photo stands; see SPEC "The ledger"."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # same content and options as ``duplicate_of``: never paid


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
class FoundPhoto:
    """A file the runner found and hashed."""

    path: str
    folder: str
    size: int
    mtime_ns: int
    sha256: str
    options: PhotoOptions


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


class KnownFile(NamedTuple):
    """A current photo as a re-run needs it: is the file unchanged, and where does it stand?"""

    size: int
    mtime_ns: int
    sha256: str
    identity: str
    state: State
    id: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One `aihd` command that ran against the ledger."""

    id: int
    command: str
    started_at: str
    ended_at: str | None
    outcome: str | None
    summary: dict[str, object]


class Ledger(Protocol):
    """The narrow interface the runner uses; a PostgreSQL ledger can implement it later."""

    path: str

    def close(self) -> None: ...
    def grouped(self) -> AbstractContextManager[None]: ...
    def acquire_run_lock(self, holder: str) -> None: ...
    def release_run_lock(self) -> None: ...
    def start_run(self, command: str) -> int: ...
    def finish_run(self, run_id: int, outcome: str, summary: Mapping[str, object]) -> None: ...
    def last_run(self) -> RunRecord | None: ...
    def cached_hashes(self) -> dict[str, tuple[int, int, str]]: ...
    def known_files(self, paths: Sequence[str]) -> dict[str, KnownFile]: ...
    def record_found(self, found: Sequence[FoundPhoto]) -> list[PhotoRow]: ...
    def record_broken(
        self, path: str, folder: str, size: int, mtime_ns: int, reason: str
    ) -> PhotoRow: ...
    def photos(
        self, states: Iterable[State] | None = None, *, current_only: bool = True
    ) -> list[PhotoRow]: ...
    def get(self, photo_id: int) -> PhotoRow: ...
    def mark_uploaded(self, photo_id: int, order_id: str) -> PhotoRow: ...
    def mark_submitting(self, photo_id: int, order_id: str | None = None) -> PhotoRow: ...
    def mark_submitted(self, photo_id: int, image_id: str | None, eta: int | None) -> PhotoRow: ...
    def mark_failed(self, photo_id: int, error: str, *, retryable: bool) -> PhotoRow: ...
    def mark_pending(self, photo_id: int) -> PhotoRow: ...
    def mark_completed(
        self, photo_id: int, result_urls: Sequence[str], output_paths: Sequence[str]
    ) -> PhotoRow: ...
    def reset_failed(self, *, include_permanent: bool) -> int: ...
    def counts(self) -> dict[State, int]: ...
    def counts_by_folder(self) -> dict[str, dict[State, int]]: ...

    # -- ignored paths and catalog spellings (`aihd ignore`, export) --------------------------
    def ignore_paths(self, paths: Sequence[str], reason: str) -> int: ...
    def ignored_paths(self) -> set[str]: ...
    def remember_titles(self, titles: Iterable[str]) -> None: ...
    def titles(self) -> dict[str, str]: ...


def open_ledger(path: Path) -> SqliteLedger:
    """Open (creating and migrating if needed) the SQLite ledger at ``path``."""
    from pipeline.sqlite_ledger import SqliteLedger

    return SqliteLedger(Path(path))
