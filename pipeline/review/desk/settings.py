"""What the review desk is given: the manifests, the account's ledger, and what it may not import.

The desk is part of review (layer 3): it reads and writes the ledger, never orders. What it needs
from above (the re-order plan of ``aihd reorder``, in ordering/) is passed in by the command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.ledger import Ledger
from pipeline.manifest.loader import Manifest

__all__ = ["DEFAULT_PREFIX", "DeskSettings", "PlanReorder"]

DEFAULT_PREFIX = "/review"

# ordering.reorder.plan_reorder: what re-ordering each path would cost, and the photos it clears
PlanReorder = Callable[[Ledger, Sequence[str]], tuple[list[str], list[int]]]


@dataclass(frozen=True, slots=True)
class DeskSettings:
    """The review desk of ``manifests`` (one account: one ledger)."""

    manifests: tuple[Manifest, ...]
    open_ledger: Callable[[], Ledger]  # a new handle on the account's ledger, each call
    plan_reorder: PlanReorder
    listen_host: str = "127.0.0.1"  # --listen's host: a name the desk answers to (Host header)
    public_hosts: tuple[str, ...] = ()  # "host[:port]" a proxy in front serves the desk as
    prefix: str = DEFAULT_PREFIX
    delivery_profile: str = "mls-default"
    delivery_folder: Path | None = None  # None: delivery/ beside each manifest, as `aihd deliver`
    # Who orders a photo ordered again: "" for the next `aihd run MANIFEST` (shown as that
    # command); `aihd serve` says it does, itself.
    reordered_by: str = ""
    # Told the originals of photos ordered again, once the ledger holds it: `aihd serve` looks
    # at their folders at once, not at its next look at every folder (unchanged files).
    on_reordered: Callable[[Sequence[str]], None] = lambda paths: None
    poll_seconds: float = 1.0  # how often the ledger is read for the browsers' live view
