"""``aihd run``: find the manifest's photos, check and hash them, and order each one once.

Stages, in order: resolve the manifest's names against the live catalog (nothing is uploaded
if one is wrong), reconcile orders a killed run left ``submitting``, then scan folders in a
worker thread while a pool of ``concurrency`` photo workers uploads and submits under the
order window. Stopping (Ctrl-C, SIGTERM, a budget) cancels workers between steps; an order
POST in flight is shielded and its row stays ``submitting`` for the next run to reconcile.
"""

from __future__ import annotations

__all__ = ["RunLimits", "Runner"]

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipeline.api.factory import AnyVersion
from pipeline.errors import (
    ApiError,
    AuthRefused,
    ClaimLost,
    ConnectFailed,
    OrderBudgetSpent,
    PhotoChanged,
    PhotoError,
    SubmitRefused,
)
from pipeline.filenames import shell_join
from pipeline.ledger import (
    Counterpart,
    FoundPhoto,
    KnownFile,
    Ledger,
    PhotoOptions,
    PhotoRow,
    State,
    WindowRule,
)
from pipeline.ledger.groupcommit import GroupCommit
from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.ordering.catalog import ResolvedOptions, photo_options
from pipeline.ordering.choices import resolve_chosen
from pipeline.ordering.flow import OrderFlow, RunCounters
from pipeline.ordering.progress import Progress
from pipeline.ordering.scan import (
    CheckedPhoto,
    FileStat,
    check_batch,
    folder_files,
    stat_file,
    take_batch,
)
from pipeline.ordering.settling import Dispatch
from pipeline.ordering.summary import RunSummary, summarize
from pipeline.ordering.window import OrderWindow
from pipeline.retry import Backoff
from pipeline.stopping import StopSwitch

log = logging.getLogger("aihd")
T = TypeVar("T")

_OPEN_STATES = (State.PENDING, State.UPLOADED, State.SUBMITTING, State.UNKNOWN)
_RECLAIMS = 3  # a photo whose claim this run lost is claimed again at most this often
_TAKE_BATCH = 16  # photos hashed per trip to the worker thread when a service takes them
# At a signal, how long order POSTs already sent may take to be answered: a run ends within
# 10 s of SIGTERM whatever it was doing (those still unanswered are settled by the next run).
SIGNAL_DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RunLimits:
    concurrency: int
    max_orders: int | None = None
    max_duration: float | None = None
    retry_failed: bool = False
    settle_seconds: float = 120.0
    drain_seconds: float = 60.0  # at a stop, how long order POSTs already sent may finish
    key_fingerprint: str = ""  # recorded with each order: which key sent it (never the key)
    account: str = ""  # whose order window: "<account>@<endpoint>" (manifest/accounts.py)
    # `aihd serve`: photos come from ``take`` as they are complete, and a settled photo is let
    # go (its claim, its place in this run's memory), so a later look may bring it back.
    serving: bool = False
    stop_within: float | None = None  # at a stop, wait at most this for POSTs (None: drain)


class Runner:
    """One run of a manifest against one ledger and one API client."""

    def __init__(
        self,
        manifest: Manifest,
        ledger: Ledger,
        client: AnyVersion,
        limits: RunLimits,
        *,
        window: OrderWindow,
        progress: Progress,
        counters: RunCounters,
        stop: StopSwitch,
    ) -> None:
        self.manifest = manifest
        self.ledger = ledger
        self.client = client
        self.limits = limits
        self.window = window
        self.progress = progress
        self.counters = counters
        self.stop = stop
        self.writes = GroupCommit(ledger)
        self._options: dict[tuple[str, str, tuple[str, ...]], ResolvedOptions] = {}
        # Ids, not rows: 100,000 queued photos stay a few MB; a worker reads its row when it
        # takes the photo, so it also sees the row as it is then.
        self._queue: asyncio.Queue[int | None] = asyncio.Queue()
        self._seen_ids: set[int] = set()  # counted in the progress (and queued when open)
        self._open = 0  # photos queued, with a worker, or settling
        self._deferred: list[int] = []  # photos --max-orders leaves for the next run
        self._scan_done = False
        self._idle = asyncio.Event()
        self._folders: dict[str, tuple[FolderSpec, ResolvedOptions]] = {}
        self._manifest_path = str(manifest.path)
        self._held_elsewhere = 0
        self._reclaims: Counter[int] = Counter()  # claims lost and taken again, per photo
        # Failed before this run and found unchanged: exit 1 is for the run that found them.
        self._known_failed: set[int] = set()
        # Held as unknown before this run, with its reason then: reported the night it came.
        self._known_unknown: dict[int, str | None] = {}
        self._known_broken: set[tuple[str, int, int]] = set()
        self.on_settled: Callable[[int], None] | None = None  # aihd serve: collect it next
        self._scan_stop = threading.Event()  # ends hashing in its thread when the run stops
        self.backoff = Backoff(
            attempts=manifest.retry.attempts, wait_max=manifest.retry.max_backoff
        )
        self._flow = OrderFlow(
            client,
            ledger,
            self.writes,
            window,
            self.backoff,
            counters,
            Dispatch(requeue=self._queue.put_nowait, settled=self._close, fatal=self._fatal),
            options_for=self._options_for,
            max_orders=limits.max_orders,
            settle_seconds=limits.settle_seconds,
            account_window=WindowRule(
                manifest.rate_limit.orders,
                manifest.rate_limit.per_seconds,
                # The longest an order POST may wait for its answer, with room to spare.
                answer_within=2 * limits.drain_seconds + 5,
                account=limits.account,
            ),
            key_fingerprint=limits.key_fingerprint,
        )
        progress.settling = self._flow

    async def resolve_catalog(self) -> list[tuple[FolderSpec, ResolvedOptions]]:
        """Resolve every folder's space and toggles; CatalogError names file:line."""
        resolved = await resolve_chosen(
            self.manifest, self.client, self.backoff, self.ledger, record=True
        )
        for folder, options in resolved:
            self._options.setdefault(_key(options.service, options), options)
            self._folders[folder.name] = (folder, options)
        # The ledger keys titles casefolded (identity); export shows them as the catalog does.
        titles = {e.title for _, o in resolved for e in o.enhancements}
        if not titles <= set(self.ledger.titles().values()):
            self.ledger.remember_titles(titles)  # a write (and fsync) only when one is new
        return resolved

    async def use_manifest(self, manifest: Manifest) -> None:
        """From now on, the folders and options of ``manifest`` (aihd serve: SIGHUP, or a new
        folder a glob matches); a wrong name (CatalogError) keeps the manifest as it was."""
        old, self.manifest = self.manifest, manifest
        try:
            await self.resolve_catalog()
        except BaseException:
            self.manifest = old
            raise

    async def run(
        self,
        started: float,
        *,
        feed: Callable[[Runner], Coroutine[None, None, None]] | None = None,
    ) -> RunSummary:
        """Order every photo once. ``feed``: instead of one scan of the folders, a source that
        hands photos to ``take`` as they come, until the run is stopped (aihd serve)."""
        folders = await self._unless_stopped(self.resolve_catalog())
        if folders is None:  # a signal while the catalog was read: nothing was spent
            return self._summary(started, settling=0)
        self.ledger.reset_failed(include_permanent=self.limits.retry_failed)
        self._known_broken = {
            (r.path, r.size, r.mtime_ns) for r in self.ledger.photos([State.FAILED]) if not r.sha256
        }
        # Orders a killed or stopped run left unsettled come first: they may already be paid.
        for row in self.ledger.photos([State.SUBMITTING, State.UNKNOWN], current_only=False):
            if row.state is State.UNKNOWN:
                self._known_unknown[row.id] = row.error
            self.progress.add_found(self._admit(row.id, row.state)[0])
        workers = [
            asyncio.create_task(self._worker(), name=f"photo-worker-{n}")
            for n in range(self.limits.concurrency)
        ]
        source = feed(self) if feed is not None else self._scan(folders)
        scanner = asyncio.create_task(source, name="scanner")
        timer = asyncio.create_task(self._deadline(), name="deadline")
        ticker = asyncio.create_task(self._tick(), name="progress")
        stopper = asyncio.create_task(self.stop.event.wait(), name="stop")
        try:
            await asyncio.wait([scanner, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not self.stop.event.is_set():
                scanner.result()  # a scan error is a bug: let it surface
                self._scan_done = True
                self._check_idle()
                # Settled lost answers may hand photos back to the workers until the very end.
                idle = asyncio.create_task(self._idle.wait(), name="idle")
                await asyncio.wait([idle, stopper], return_when=asyncio.FIRST_COMPLETED)
                idle.cancel()
                if self._deferred:
                    self.stop.set("budget")  # the rest is left for the next run
                for _ in workers:
                    self._queue.put_nowait(None)
                all_done = asyncio.create_task(asyncio.wait(workers), name="all-workers")
                await asyncio.wait([all_done, stopper], return_when=asyncio.FIRST_COMPLETED)
                all_done.cancel()
        finally:
            for task in (scanner, timer, ticker, stopper, *workers):
                task.cancel()
            self._scan_stop.set()  # a batch being hashed in its thread ends within a chunk
            await asyncio.gather(scanner, timer, ticker, stopper, *workers, return_exceptions=True)
            settling = self._flow.settling
            drain = self.limits.drain_seconds
            if self.limits.stop_within is not None:
                drain = self.limits.stop_within
            if self.stop.reason == "interrupted":
                drain = min(drain, SIGNAL_DRAIN_SECONDS)
            await self._flow.drain(within_seconds=drain)
            self.progress.close()
        if isinstance(self.stop.error, AuthRefused):
            raise self.stop.error
        if self.stop.error is not None and self.stop.reason == "crash":
            raise self.stop.error
        for worker in workers:
            if not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]
        return self._summary(started, settling)

    def _summary(self, started: float, settling: int) -> RunSummary:
        return summarize(
            self.ledger,
            [str(folder.path) for folder in self.manifest.folders],
            self._seen_ids - self._known_failed,
            self.counters,
            stop_reason=self.stop.reason,
            seconds=time.monotonic() - started,
            settling=settling,
            held_by_other_runs=self._held_elsewhere,
            known_unknown=self._known_unknown,
        )

    async def _unless_stopped(self, step: Awaitable[T]) -> T | None:
        """The step's result, or None when the run is stopped first (the step is cancelled)."""
        task = asyncio.ensure_future(step)
        stopper = asyncio.create_task(self.stop.event.wait(), name="stop")
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
        return None if task.cancelled() else task.result()

    # -- scanning -----------------------------------------------------------------------------

    async def _scan(self, folders: Sequence[tuple[FolderSpec, ResolvedOptions]]) -> None:
        # `aihd ignore`: photos by content wherever they are, unreadable files by path.
        ignored, ignored_contents = self.ledger.ignored_paths(), self.ledger.ignored_contents()
        for folder, options in folders:
            found_options = photo_options(options)
            # Listed, looked up and hashed a batch at a time: 100,000 photos (or the ledger's
            # facts about them) never sit in memory at once, and the first orders go out while
            # the rest of the folder is still being read.
            files = folder_files(folder)
            while batch := await asyncio.to_thread(take_batch, files):
                if ignored:
                    batch = [st for st in batch if st.path not in ignored]
                known = self.ledger.known_files([st.path for st in batch])
                checked = await asyncio.to_thread(check_batch, batch, known, self._scan_stop)
                if ignored_contents:
                    checked = [c for c in checked if c.sha256 not in ignored_contents]
                await self._record(folder, found_options, checked, known, options.counterparts)

    async def take(self, folder_name: str, stats: Sequence[FileStat]) -> None:
        """Photos of one of the manifest's folders, found complete (aihd serve): checked,
        recorded and queued as a scan's are; the ledger decides what is new."""
        entry = self._folders.get(folder_name)
        if entry is None:
            return
        folder, options = entry
        # `aihd ignore`: photos by content wherever they are, unreadable files by path.
        ignored, ignored_contents = self.ledger.ignored_paths(), self.ledger.ignored_contents()
        chosen = [st for st in stats if st.path not in ignored]
        # A few at a time: a stop waits for the hashing in flight, never for a whole folder.
        for start in range(0, len(chosen), _TAKE_BATCH):
            batch = chosen[start : start + _TAKE_BATCH]
            known = self.ledger.known_files([st.path for st in batch])
            checked = await asyncio.to_thread(check_batch, batch, known, self._scan_stop)
            if ignored_contents:
                checked = [c for c in checked if c.sha256 not in ignored_contents]
            await self._record(folder, photo_options(options), checked, known, options.counterparts)

    async def _rescan(self, row: PhotoRow) -> None:
        """A photo that changed after its scan is checked again and recorded as it is now."""
        entry = self._folders.get(row.folder)
        if entry is None:
            reason = "changed since its scan, and its folder is no longer in the manifest"
            await self.writes.call(self.ledger.mark_failed, row.id, reason, retryable=True)
            return
        folder, options = entry
        st = await asyncio.to_thread(stat_file, row.path)
        checked = await asyncio.to_thread(check_batch, [st], {}, self._scan_stop)
        await self._record(folder, photo_options(options), checked, {}, options.counterparts)

    async def _record(
        self,
        folder: FolderSpec,
        options: PhotoOptions,
        checked: list[CheckedPhoto],
        known: Mapping[str, KnownFile],
        counterparts: tuple[Counterpart, ...] = (),
    ) -> None:
        found: list[FoundPhoto] = []
        copies: list[int] = []  # copies known unchanged from an earlier run
        broken = fresh = settled = 0
        for photo in checked:
            st = photo.stat
            stored = known.get(st.path)
            if (
                stored is not None
                and photo.sha256 == stored.sha256
                and stored.identity == options.identity(stored.sha256)
            ):
                # Unchanged file, unchanged options: the ledger already has it; no write.
                if stored.state is State.DUPLICATE:
                    copies.append(stored.id)  # done only if its original is (see below)
                    continue
                counted, done = self._admit(stored.id, stored.state)
                fresh, settled = fresh + counted, settled + done
                continue
            if photo.sha256 is None:
                reason = photo.broken or "unreadable"
                row = await self.writes.call(
                    self.ledger.record_broken,
                    st.path,
                    folder.name,
                    st.size,
                    st.mtime_ns,
                    reason,
                    self._manifest_path,
                )
                broken += 1
                if (st.path, st.size, st.mtime_ns) in self._known_broken:
                    self._known_failed.add(row.id)  # reported the night it was found
                    ignore = shell_join(["aihd", "ignore", self._manifest_path, st.path])
                    log.info("%s: %s (failed before; `%s` leaves it out)", st.path, reason, ignore)
                else:
                    log.warning("%s: %s", st.path, reason)
                if self.limits.serving:
                    # Seen again at each rescan: said once, and kept out of the photos in work.
                    self._known_broken.add((st.path, st.size, st.mtime_ns))
                else:
                    self._seen_ids.add(row.id)
                continue
            found.append(
                FoundPhoto(
                    st.path,
                    folder.name,
                    st.size,
                    st.mtime_ns,
                    photo.sha256,
                    options,
                    self._manifest_path,
                    counterparts,
                )
            )
        rows = await self.writes.call(self.ledger.record_found, found) if found else []
        for row in rows:
            stored = known.get(row.path)
            if _held(row) and (stored is None or stored.identity != row.identity):
                # Held tonight (paid through the other API version, the choices not told
                # apart for sure): a failure of this run, told once, as a broken file is.
                self._seen_ids.add(row.id)
                fresh, settled = fresh + 1, settled + 1
                log.warning("%s: %s", row.path, row.error)
        states = [(row.id, row.state) for row in rows if row.id not in self._seen_ids]
        states += [(i, State.DUPLICATE) for i in copies]
        if any(state is State.DUPLICATE for _, state in states):
            adopted = await self._adopt_orphans([i for i, s in states if s is State.DUPLICATE])
            states = [(i, adopted.get(i, state)) for i, state in states]
        for photo_id, state in states:
            counted, done = self._admit(photo_id, state)
            fresh, settled = fresh + counted, settled + done
        # Photos done before this run are shown apart: the bar counts this run's work.
        self.progress.add_found(broken + fresh, done_before=settled)
        self.progress.settle(broken)

    async def _adopt_orphans(self, copies: list[int]) -> dict[int, State]:
        """A copy whose unpaid original vanished takes its place and is ordered itself."""
        originals = self.ledger.unpaid_originals(copies)
        if not originals:
            return {}
        paths = {path for *_, path, _ in originals}
        missing = await asyncio.to_thread(lambda: {p for p in paths if not os.path.exists(p)})
        adopted = await self.writes.call(self.ledger.adopt_orphans, copies, missing)
        return {row.id: row.state for row in adopted}

    def _admit(self, photo_id: int, state: State) -> tuple[int, int]:
        """Count a photo once (one reconciled at the start may be found again); queue it if it
        still needs its order. Returns (newly counted, already settled), each 0 or 1."""
        if photo_id in self._seen_ids:
            return 0, 0
        if self.limits.serving and state not in _OPEN_STATES:
            return 0, 0  # a service remembers only the photos in work (see _close)
        self._seen_ids.add(photo_id)
        if state is State.FAILED:
            self._known_failed.add(photo_id)  # failed in an earlier run, left as it was

        if state in _OPEN_STATES:
            self._open += 1
            self._queue.put_nowait(photo_id)
            return 1, 0
        return 1, 1

    def _close(self, photo_id: int) -> None:
        """The photo is settled for this run: charged, failed, or left for the next run."""
        self._open -= 1
        self._flow.forget(photo_id)
        self.progress.settle()
        if self.limits.serving:
            # Let it go: held by another run, it may be that run's to finish, or (if that run
            # dies) a later look's; a charged photo is never ordered again whatever comes back.
            self._seen_ids.discard(photo_id)
            self.writes.call(self.ledger.release_claim, photo_id).add_done_callback(_seen)
        if self.on_settled is not None:
            self.on_settled(photo_id)
        if self._flow.budget.spent and (
            not self._scan_done or not self._queue.empty() or self._deferred
        ):
            # The last order --max-orders allows is answered: stop now, resumable.
            self.stop.set("budget")
        self._check_idle()

    def _check_idle(self) -> None:
        if self._scan_done and self._open == 0:
            self._idle.set()

    def _fatal(self, error: BaseException) -> None:
        self.stop.set("auth" if isinstance(error, AuthRefused) else "crash", error)

    # -- working ------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while (photo_id := await self._queue.get()) is not None:
            settled = True
            # Claimed, and read as it stands now that it is ours, in one statement.
            row = await self.writes.call(self.ledger.claim_row, photo_id)
            if row is None:
                self._held_elsewhere += 1  # another run of the account is on it
                self._close(photo_id)
                continue
            fence = self.ledger.fence(photo_id)  # the token every write of it must match
            if row.state not in _OPEN_STATES:
                self._close(photo_id)  # done by another run meanwhile
                continue
            try:
                settled = await self._flow.process(row, fence)
            except OrderBudgetSpent:
                self._deferred.append(photo_id)
            except AuthRefused as exc:
                self.stop.set("auth", exc)
                return
            except ConnectFailed as exc:
                # No connection after every retry: the API is away, not this photo's fault.
                await self.writes.call(self.ledger.mark_failed, row.id, str(exc), retryable=True)
                if not self.limits.serving:
                    self.stop.set("unreachable", exc)
                    return
                # A service rides the outage out: the photo is tried again at the next rescan.
                log.warning("%s: %s; tried again at the next rescan", row.path, exc)
            except ApiError as exc:
                # Retries are spent on a transient failure: keep the photo for the next run.
                await self.writes.call(self.ledger.mark_failed, row.id, str(exc), retryable=True)
            except ClaimLost as exc:
                # This run was paused past its lease (or another run took the photo over):
                # nothing was sent. Claimed again, it goes on here unless another run has it.
                log.warning("%s", exc)
                self._reclaims[photo_id] += 1
                if self._reclaims[photo_id] <= _RECLAIMS:
                    settled = False
                    self._queue.put_nowait(photo_id)
            except SubmitRefused as exc:
                log.warning("%s", exc)  # another run of the account has it: nothing was sent
            except PhotoChanged as exc:
                log.warning("%s: scanned again", exc)
                await self._rescan(row)
            except PhotoError as exc:
                await self.writes.call(self.ledger.mark_failed, row.id, exc.reason, retryable=True)
                log.warning("%s", exc)
            except Exception as exc:  # a bug: stop the run rather than wait for this photo
                self._fatal(exc)
                raise
            finally:
                if settled:
                    self._close(photo_id)

    async def _deadline(self) -> None:
        if self.limits.max_duration is None:
            return
        await asyncio.sleep(self.limits.max_duration)
        log.info("--max-duration reached: stopping, the rest is left for the next run")
        self.stop.set("budget")

    async def _tick(self) -> None:
        """Keep the bar's "next slot" fresh, log now and then, and renew this run's claims."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            self.progress.tick()
            if time.monotonic() - renewed > self.ledger.lease_seconds / 3:
                renewed = time.monotonic()
                await self.writes.call(self.ledger.renew_claims)

    def _options_for(self, row: PhotoRow) -> ResolvedOptions | None:
        key = (row.service, row.space, row.enhancements)
        # The photo's own folder first: a v3 folder also names its listing's project.
        entry = self._folders.get(row.folder)
        if entry is not None and _key(entry[1].service, entry[1]) == key:
            return entry[1]
        return self._options.get(key)


def _held(row: PhotoRow) -> bool:
    """Held: failed as paid through the other API version (sqlite_found.HELD)."""
    return row.state is State.FAILED and row.duplicate_of is not None


def _seen(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning("could not let a photo's claim go (its lease ends it): %s", error)


def _key(service: str, options: ResolvedOptions) -> tuple[str, str, tuple[str, ...]]:
    chosen = photo_options(options)  # as the ledger's rows hold them (choices.py)
    return (service, chosen.space, chosen.enhancements)
