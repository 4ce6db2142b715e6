"""``aihd plan``: what a run would do and spend, worked out without spending anything.

It reads the live catalog (names checked as in a run), lists and hashes the photos (stored
hashes reused), and reads the ledger if there is one, read-only: no upload, no order, no lock,
no ledger created. Each photo is sorted the way the runner would treat it.
"""

from __future__ import annotations

__all__ = ["FolderPlan", "Plan", "make_plan"]

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.api.factory import AnyVersion
from pipeline.api.tools import describe
from pipeline.api.v1 import ApiClient
from pipeline.columns import pad, width
from pipeline.filenames import shell_join, shown
from pipeline.ledger import UNSETTLED, PhotoRow, State, WindowRule, open_ledger
from pipeline.ledger.stores import is_url
from pipeline.manifest.loader import Manifest
from pipeline.ordering.catalog import ResolvedOptions, photo_options
from pipeline.ordering.choices import resolve_chosen
from pipeline.ordering.crossversion import version_of
from pipeline.ordering.scan import list_and_check
from pipeline.retry import Backoff

_DONE = (State.SUBMITTED, State.COMPLETED)
# How long an unanswered order POST may count as in flight: as a run with the default
# --request-timeout (60 s) counts it (app/session.py).
_ANSWER_WITHIN = 2 * 60.0 + 5
_COSTS_AN_ORDER = (State.PENDING, State.UPLOADED)
_UNSETTLED = (State.SUBMITTING, State.UNKNOWN)  # may have been charged: orders spent, at most


@dataclass(slots=True)
class FolderPlan:
    """One folder's photos, counted by what a run would do with each (filled in as found)."""

    folder: str
    tool: str = ""  # the tool and its options, as a person reads them (pipeline.api.tools)
    options: list[str] = field(default_factory=list)
    found: int = 0
    new: int = 0  # never seen: one order each
    resume: int = 0  # pending, uploaded or retryable failures: one order each
    check: int = 0  # submitting: its outcome is asked of the API first, no new order
    unknown: int = 0  # held: its order may have been charged; asked of the API, no new order
    done: int = 0
    duplicates: int = 0
    failed: int = 0  # failed for good: left alone unless --retry-failed
    result_failed: int = 0  # charged, but the result failed: collect retries it, no order
    upscales: int = 0  # upscale: true: photos whose upscale is still to be asked (aihd serve)
    broken: list[dict[str, str]] = field(default_factory=list)
    # Paid through the other API version with the same choice ("v1": n): no order, ever.
    paid_through: dict[str, int] = field(default_factory=dict)
    held: list[dict[str, str]] = field(default_factory=list)  # paid through it, not told apart

    @property
    def orders(self) -> int:
        return self.new + self.resume


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run would do and spend, folder by folder, and how long the window makes it."""

    folders: list[FolderPlan]
    orders: int
    window_orders: int
    window_seconds: float
    matches: tuple[tuple[str, int, tuple[str, ...]], ...] = ()  # (pattern, line, folders)
    paid: int = 0  # photos of the manifest the API charged already (as `aihd status` counts)
    manifest: str = ""
    # Where the plan read what is paid: a plan under another HOME or account reads another
    # ledger, and says "nothing paid" for photos paid elsewhere: the user must see which.
    ledger: str = ""  # its path (a URL without its password)
    account: str = "default"
    ledger_exists: bool = False
    paid_in_ledger: int = 0  # charged photos of every manifest of the account in this ledger
    unsettled: int = 0  # the manifest's photos whose order may have been charged, unconfirmed
    api: str = "v1"  # v3: each folder's tool is shown (v1 orders image enhancement only)
    window_wait: float = 0.0  # seconds until the account's window, as the ledger holds it, has room

    @property
    def upscales(self) -> int:
        return sum(f.upscales for f in self.folders)

    @property
    def to_check(self) -> int:
        """Orders whose POST outcome is unknown: asked first, ordered again only if their
        details said "not received" for the whole settle time."""
        return sum(f.check + f.unknown for f in self.folders)

    @property
    def seconds(self) -> float:
        """At the window's steady pace (each order takes one slot's share of the window), after
        the orders already in the window leave room, as the run waits for them."""
        if not self.orders:
            return 0.0
        return self.window_wait + self.orders * self.window_seconds / self.window_orders

    def to_json(self) -> str:
        folders = [{**asdict(f), "orders": f.orders} for f in self.folders]
        return json.dumps(
            {
                "folders": folders,
                "orders": self.orders,
                "orders_at_most": self.orders + self.to_check,
                "upscales": self.upscales,
                "paid": self.paid,
                # Every order POST that may have charged (as `aihd status` counts them).
                "orders_spent": self.paid + self.unsettled,
                "unknown": self.unsettled,
                "ledger": {
                    "path": self.ledger,
                    "account": self.account,
                    "exists": self.ledger_exists,
                    "paid": self.paid_in_ledger,
                },
                "seconds": round(self.seconds, 1),
                "window": {"orders": self.window_orders, "per_seconds": self.window_seconds},
                "patterns": [
                    {"path": path, "line": line, "folders": [shown(f) for f in found]}
                    for path, line, found in self.matches
                ],
            },
            indent=2,
        )

    def render(self) -> str:
        # One word per state, as `aihd status` says it: a broken file is a failed photo.
        cells = max([len("folder"), *(width(f.folder) for f in self.folders)])
        lines = [
            f"{pad('folder', cells)} {'found':>6} {'new':>6} {'resume':>6} {'check':>6} "
            f"{'done':>6} {'dup':>6} {'failed':>6}"
        ]
        for f in self.folders:
            lines.append(
                f"{pad(f.folder, cells)} {f.found:>6} {f.new:>6} {f.resume:>6} "
                f"{f.check + f.unknown:>6} "
                f"{f.done:>6} {f.duplicates + sum(f.paid_through.values()):>6} "
                f"{len(f.broken) + len(f.held) + f.failed + f.result_failed:>6}"
            )
        if self.api == "v3":
            for f in self.folders:
                lines.append(f"  {f.folder}: {'; '.join([f.tool, *f.options])}")
        for f in self.folders:
            lines += [f"  failed: {b['path']}: {b['reason']}" for b in f.broken]
            lines += [f"  held: {h['path']}: {h['reason']}" for h in f.held]
        for version in sorted({v for f in self.folders for v in f.paid_through}):
            paid = sum(f.paid_through.get(version, 0) for f in self.folders)
            lines.append(
                f"{paid} photos paid through {version} (the same photo and choice; counted in "
                "'dup'): not ordered again; the reorder command orders one again, at a cost"
            )
        if self.unsettled:
            lines.append(
                f"{self.unsettled} photos held as unknown: their order may have been charged "
                "(counted in 'check'); a run reads their orders' details first and never orders "
                "them again blindly"
            )
        if result_failed := sum(f.result_failed for f in self.folders):
            collect = shell_join(["aihd", "collect", self.manifest])
            lines.append(
                f"{result_failed} paid photos whose results failed (counted in 'failed'): "
                f"`{collect}` retries their results; no order is spent on them"
            )
        for path, line, found in self.matches:
            if len(found) != 1 or found[0] != path.rstrip("/"):
                listed = ", ".join(found[:10]) + (
                    f", ... ({len(found)})" if len(found) > 10 else ""
                )
                lines.append(f"  {path} (line {line}) matched: {listed or 'no folder'}")
        per = _duration(self.window_seconds)
        lines.append(self._where())
        lines.append(
            f"{self.orders} orders, {_about(self.seconds)} at {self.window_orders} per {per}; "
            "names checked against the live catalog; nothing was spent"
        )
        if self.orders and self.window_wait > 0:
            lines.append(
                f"  the account's window is full now: its first order can go in "
                f"{self.window_wait:.0f} s (counted in the time above)"
            )
        if self.to_check:
            lines.append(
                f"  and up to {self.to_check} more: orders a stopped run left unconfirmed are "
                "asked of the API first and placed again only if they never reached it"
            )
        if self.upscales:
            lines.append(
                f"{self.upscales} upscales to ask for (upscale: true): `aihd serve` asks for "
                "each once its photo is enhanced, and receives it by webhook"
            )
        return "\n".join(lines)

    def _where(self) -> str:
        if not self.ledger_exists:
            return (
                f"ledger: {self.ledger} (account {self.account}): not created yet, so no photo "
                "is paid in it; already paid in this ledger: 0"
            )
        return (
            f"ledger: {self.ledger} (account {self.account}); already paid in this ledger: "
            f"{self.paid} of this manifest's photos ({self.paid_in_ledger} in all)"
        )


async def make_plan(
    manifest: Manifest,
    client: AnyVersion | ApiClient,
    ledger_path: Path | str,
    *,
    window_account: str = "",
) -> Plan:
    """Sort every photo as the runner would, reading the ledger (if any) and never writing.

    ``window_account``: whose order window to read (manifest/accounts.py); '' counts every
    account's orders in the ledger, the safe side."""
    backoff = Backoff(manifest.retry.attempts, wait_max=manifest.retry.max_backoff)
    rows: list[PhotoRow] = []
    cached: dict[str, tuple[int, int, str]] = {}
    ignored: set[str] = set()
    ignored_contents: set[str] = set()
    ledger = None
    window_wait = 0.0
    rule = manifest.rate_limit
    where, exists = str(ledger_path), False
    upscaled: set[int] = set()  # photos with an upscale asked for already
    if is_url(ledger_path) or await asyncio.to_thread(Path(ledger_path).is_file):
        ledger = open_ledger(ledger_path)
        where, exists = ledger.path, True  # a URL without its password
    try:
        # The ledger's keys for the catalog's entries (choices.py), read, never recorded.
        folders = await resolve_chosen(manifest, client, backoff, ledger, record=False)
        if ledger is not None:
            rows = ledger.photos(current_only=False)
            cached = ledger.cached_hashes()
            ignored = ledger.ignored_paths()
            ignored_contents = ledger.ignored_contents()
            # As the run counts it: orders of every run of the account, none from the future.
            window_wait = ledger.window_wait(
                WindowRule(rule.orders, rule.per_seconds, _ANSWER_WITHIN, window_account)
            )
            if manifest.upscales:
                upscaled = {u.photo_id for u in ledger.upscales() if u.state != "wanted"}
    finally:
        if ledger is not None:
            ledger.close()
    by_path = {(r.path, r.identity): r for r in rows}
    by_id = {r.id: r for r in rows}
    owners = {
        r.identity: r.path
        for r in rows
        if r.state is not State.DUPLICATE and not (r.state is State.FAILED and r.duplicate_of)
    }
    # Charged, or maybe: an order whose outcome is unsettled holds its counterparts too.
    charged = {r.identity: r for r in rows if r.charged or r.state in _UNSETTLED}
    plans = []
    for folder, options in folders:
        # v1: the catalog's title of the space ("Indoor"); v3: the area or room's value.
        space = options.space.name if options.v3 else options.space.title or options.space.name
        words = describe(options.service, space, [e.title for e in options.enhancements])
        plan = FolderPlan(
            shown(folder.name), words.tool, [s for s in (words.space, *words.options) if s]
        )
        identity_of = photo_options(options).identity
        for photo in await asyncio.to_thread(list_and_check, folder, cached):
            path = photo.stat.path
            if path in ignored or photo.sha256 in ignored_contents:
                continue  # `aihd ignore`: left out of every run
            plan.found += 1
            if photo.sha256 is None:
                plan.broken.append({"path": shown(path), "reason": photo.broken or "unreadable"})
                continue
            identity = identity_of(photo.sha256)
            row = by_path.get((path, identity))
            paid_before = _paid(plan)
            if row is None:
                # As the runner records it: a copy, paid through the other API version, new.
                paid = None if identity in owners else _paid_through(photo.sha256, options, charged)
                if paid is not None:
                    _count_paid_through(plan, path, *paid)
                elif owners.setdefault(identity, path) != path:
                    plan.duplicates += 1
                else:
                    plan.new += 1
            elif row.state in _DONE:
                plan.done += 1
            elif row.duplicate_of is not None and row.state in (State.DUPLICATE, State.FAILED):
                original = by_id.get(row.duplicate_of)
                if original is not None and original.service != row.service:
                    held = (row.error or "held") if row.state is State.FAILED else ""
                    _count_paid_through(plan, path, original, held)
                elif row.state is State.DUPLICATE:
                    plan.duplicates += 1
                else:
                    plan.failed += 1
            elif row.state is State.SUBMITTING:
                plan.check += 1
            elif row.state is State.UNKNOWN:
                plan.unknown += 1
            elif row.charged:
                plan.result_failed += 1
            elif row.state in _COSTS_AN_ORDER or row.retryable:
                plan.resume += 1
            else:
                plan.failed += 1
            if folder.upscale and (row is None or row.id not in upscaled):
                # Paid, or to be: its upscale is asked for once its result is in.
                plan.upscales += _paid(plan) > paid_before
        plans.append(plan)
    plans.sort(key=lambda p: p.folder)  # name order, as `aihd status` lists them
    return Plan(
        plans,
        sum(p.orders for p in plans),
        manifest.rate_limit.orders,
        manifest.rate_limit.per_seconds,
        manifest.matches,
        paid=sum(r.charged for r in rows if _inside(r.path, manifest)),
        unsettled=sum(
            r.state in _UNSETTLED and not r.charged for r in rows if _inside(r.path, manifest)
        ),
        manifest=str(manifest.path),
        ledger=where,
        account=manifest.account,
        ledger_exists=exists,
        paid_in_ledger=sum(r.charged for r in rows),
        api=manifest.api,
        window_wait=window_wait,
    )


def _paid_through(
    sha256: str, options: ResolvedOptions, charged: Mapping[str, PhotoRow]
) -> tuple[PhotoRow, str] | None:
    """The charged photo of a counterpart (crossversion.py) and why it is held, if any."""
    for counterpart in options.counterparts:
        row = charged.get(counterpart.options.identity(sha256))
        if row is not None:
            return row, counterpart.held if row.charged else UNSETTLED
    return None


def _count_paid_through(plan: FolderPlan, path: str, original: PhotoRow, held: str) -> None:
    if held:
        plan.held.append({"path": shown(path), "reason": held.removeprefix("held: ")})
    else:
        version = version_of(original.service)
        plan.paid_through[version] = plan.paid_through.get(version, 0) + 1


def _paid(plan: FolderPlan) -> int:
    """The folder's photos paid for, or to be: new, resume, check, done."""
    return plan.new + plan.resume + plan.check + plan.done


def _inside(path: str, manifest: Manifest) -> bool:
    return any(path.startswith(f"{folder.path}{os.sep}") for folder in manifest.folders)


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _about(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if hours else f"about {minutes} min"
