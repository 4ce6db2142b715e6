"""``aihd collect``: poll submitted orders and download each enhanced photo, once.

Results land in ``output/<folder>/<path below the folder, with the photo's stem>.<ext>``. Names
come from the ledger and the decoded image, never from the server. Each file is written to a dot
``.part-`` temporary beside its place, decoded with Pillow, fsynced and renamed into place; only
then is the photo marked completed, so a kill at any moment leaves no partial file and no
completed row without its files.
"""

from __future__ import annotations

import asyncio
import errno
import filecmp
import heapq
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yarl import URL

from pipeline.addresses import is_loopback
from pipeline.api.interface import PhotoApi
from pipeline.api.records import GeneratedImage, OrderDetails
from pipeline.collect.results import (
    commit_files,
    copy_results,
    decoded_extension,
    derived_root,
    ensure_inside,
    fitted_directory,
    remove_leftovers,
    result_stem,
    safe_parts,
    temp_name,
    unlink_all,
)
from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    AuthRefused,
    PipelineError,
    RateLimited,
    RequestRejected,
    ResultRejected,
    ResultTooBig,
    TransientError,
)
from pipeline.filenames import shown
from pipeline.ledger import Ledger, PhotoRow, State
from pipeline.manifest.folders import folder_matches
from pipeline.retry import Backoff, retrying

if TYPE_CHECKING:  # runner may import this module for `aihd run --collect`
    from pipeline.stopping import StopSwitch

__all__ = ["CollectSummary", "PhotoCollector", "collect", "poll_seconds", "remove_leftovers"]

log = logging.getLogger("aihd")

# The v1 docs list no failure status; these are the plausible ones (our reading).
_FAILED_STATUSES = frozenset({"failed", "error", "rejected", "canceled", "cancelled"})
# How often --wait polls an order that is not ready: the API asks for no more than once every
# 5 s. A local emulator on loopback (the tests' sandbox, `--sandbox`) finishes orders in a
# fraction of a second and answers at once: it is polled every 0.2 s, as the v3 client polls
# its processes there (pipeline/api/v3.py), so waiting on it is not 5 s a round.
POLL_SECONDS = 5.0
LOOPBACK_POLL_SECONDS = 0.2
_DECODE_TRIES = 2  # a result that fails to decode twice is broken for good, not a bad transfer


@dataclass(frozen=True, slots=True)
class CollectSummary:
    """What one collect did; ``exit_code`` follows the exit codes of docs/SPEC.md."""

    completed: int  # photos that became completed in this call
    waiting: int  # submitted photos whose results are not ready yet
    failed: int  # photos whose result failed in this call (recorded in the ledger)
    downloads: int  # files written
    polls: int  # GET /v1/order calls made
    seconds: float
    duplicates: int = 0  # files copied from an original's results for its duplicates
    stopped: str | None = None  # "timeout", "interrupted" or "budget"; None: ran to the end
    failures: tuple[tuple[str, str], ...] = ()  # (photo path, reason)
    output: str = ""
    elsewhere: int = 0  # photos another collect completed meanwhile (not waiting, not ours)
    held: int = 0  # of those waiting, photos another collect is downloading now
    again: str = ""  # the command that collects what is left ("" : not known here)

    @property
    def exit_code(self) -> int:
        if self.stopped == "interrupted":
            return EXIT_INTERRUPTED
        if self.stopped is not None and self.waiting:
            return EXIT_BUDGET
        return EXIT_SOME_FAILED if self.failed else EXIT_OK

    def to_json(self) -> str:
        fields = {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "failures": [{"path": p, "error": e} for p, e in self.failures],
        }
        return json.dumps(fields, indent=2, sort_keys=True)

    def render(self) -> str:
        outcome = {None: "finished", "timeout": "timed out"}.get(self.stopped, self.stopped)
        lines = [
            f"aihd collect: {outcome} in {self.seconds:.1f}s",
            f"  completed: {self.completed}; waiting: {self.waiting}; failed: {self.failed}",
            f"  files written: {self.downloads}; duplicate copies: {self.duplicates}; "
            f"order polls: {self.polls}",
            f"  output: {self.output}",
        ]
        if self.elsewhere:
            lines.append(f"  collected meanwhile by another collect: {self.elsewhere}")
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failures[:20]]
        if self.held:
            lines.append(f"  {self.held} of those waiting are being downloaded by another collect")
        if self.waiting:
            how = f"run `{self.again}`, or" if self.again else "wait for them, or"
            lines.append(f"  results not ready yet: {how} collect again later")
        return "\n".join(lines)


async def collect(
    ledger: Ledger,
    client: PhotoApi,
    output: Path,
    folder_roots: Mapping[str, Path] | None,
    *,
    wait: bool,
    timeout: float | None,  # noqa: ASYNC109 -- a budget for the whole collect, not one call
    concurrency: int,
    backoff: Backoff,
    stop: StopSwitch,
    min_poll_seconds: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    eta_scale: float = 1.0,
    folders: Sequence[str] = (),
) -> CollectSummary:
    """Poll every submitted photo's order (not before its eta) and place its results.

    ``min_poll_seconds``: between two polls of one order with --wait; None: POLL_SECONDS, or
    LOOPBACK_POLL_SECONDS when the API is on this machine.
    ``eta_scale``: real seconds per eta second (the local emulator's ``time_scale``).
    ``folders``: globs of folder names (``--folder``); only their photos are collected.
    """
    started = time.monotonic()
    if min_poll_seconds is None:
        min_poll_seconds = poll_seconds(client.base_url)
    output = await asyncio.to_thread(output.resolve)
    await asyncio.to_thread(remove_leftovers, output)
    # A charged photo whose result failed (a bad download, a result that did not decode, the
    # API's "failed") is retried as a result, every collect: it is never ordered again.
    # A manifest's collect takes the photos in its folders; a ledger's, all of them.
    scope = None if folder_roots is None else [str(root) for root in folder_roots.values()]
    rows = [
        row
        for row in ledger.photos([State.SUBMITTED, State.FAILED], scope=scope)
        if _still_to_collect(row) and folder_matches(row.folder, folders)
    ]
    log.info("collect: %d photos with results to fetch", len(rows))
    collector = _Collector(ledger, client, output, folder_roots, backoff, len(rows), on_progress)
    collector.folders = tuple(folders)
    schedule = _Schedule()
    now = time.monotonic()
    for row in rows:
        due = _due_at(row, eta_scale, now)
        # Without --wait each order is asked once, now: an eta is an estimate, and a result
        # that is ready early is not left for tomorrow.
        schedule.push(due if wait else now, row)
    stopped = await _drive(collector, schedule, stop, wait, timeout, concurrency, min_poll_seconds)
    copies = 0 if stopped else await collector.copy_duplicates()
    settled = collector.completed + len(collector.failures) + collector.elsewhere
    return CollectSummary(
        completed=collector.completed,
        waiting=len(rows) - settled,
        failed=len(collector.failures),
        downloads=collector.downloads,
        polls=collector.polls,
        seconds=time.monotonic() - started,
        duplicates=copies,
        stopped=stopped,
        failures=tuple(collector.failures),
        output=str(output),
        elsewhere=collector.elsewhere,
        held=len(collector.held),
    )


def poll_seconds(base_url: URL) -> float:
    """Seconds between two polls of one order with --wait, for the API at ``base_url``."""
    return LOOPBACK_POLL_SECONDS if is_loopback(base_url.host or "") else POLL_SECONDS


async def _drive(
    collector: _Collector,
    schedule: _Schedule,
    stop: StopSwitch,
    wait: bool,
    time_limit: float | None,
    concurrency: int,
    min_poll_seconds: float,
) -> str | None:
    """Run the workers until all is settled; returns why it stopped early, if it did."""
    if stop.event.is_set():
        return stop.reason or "interrupted"

    async def worker() -> None:
        while (row := await schedule.take()) is not None:
            try:
                settled = await collector.settle(row)
                if not settled and wait:
                    schedule.push(time.monotonic() + min_poll_seconds, row)
            finally:
                schedule.done()

    async def renew() -> None:
        # A large download outlasts a lease: keep this collect's claims on results alive.
        while True:
            await asyncio.sleep(collector.ledger.lease_seconds / 3)
            collector.ledger.renew_result_claims()

    workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    work = asyncio.gather(*workers)
    stopper = asyncio.create_task(stop.event.wait())
    renewer = asyncio.create_task(renew())
    waiters: list[asyncio.Future[Any]] = [work, stopper]
    stopped: str | None = None
    finished = False
    try:
        done, _ = await asyncio.wait(
            waiters, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED
        )
        finished = work in done
        if not finished:
            stopped = (stop.reason or "interrupted") if stop.event.is_set() else "timeout"
    finally:
        for task in (*workers, stopper, renewer):
            task.cancel()
        await asyncio.gather(*workers, stopper, renewer, return_exceptions=True)
        if not finished and work.done():
            with suppress(asyncio.CancelledError):
                work.exception()  # marks the cancelled workers' outcome as seen
    if finished and (error := work.exception()) is not None:
        raise error  # AuthRefused, or a bug: never swallowed
    return stopped


class _Schedule:
    """Photos ordered by when their order may next be polled."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, PhotoRow]] = []
        self._seq = 0
        self._in_flight = 0
        self._changed = asyncio.Event()

    def push(self, due: float, row: PhotoRow) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, row))
        self._changed.set()

    def done(self) -> None:
        self._in_flight -= 1
        self._changed.set()

    async def take(self) -> PhotoRow | None:
        """The next photo due; None once nothing is queued or in flight."""
        while True:
            delay: float | None = None
            if self._heap:
                delay = self._heap[0][0] - time.monotonic()
                if delay <= 0:
                    self._in_flight += 1
                    return heapq.heappop(self._heap)[2]
            elif self._in_flight == 0:
                return None
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)


@dataclass(slots=True)
class _Collector:
    """Polls one photo's order at a time and places its results; keeps the counts."""

    ledger: Ledger
    client: PhotoApi
    output: Path
    folder_roots: Mapping[str, Path] | None
    backoff: Backoff
    total: int
    on_progress: Callable[[int, int], None] | None
    completed: int = 0
    downloads: int = 0
    polls: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)  # output file -> photo path owning it
    folders: tuple[str, ...] = ()  # --folder globs; empty: every folder
    elsewhere: int = 0  # photos another collect completed meanwhile
    held: set[int] = field(default_factory=set)  # photos another collect holds now

    def __post_init__(self) -> None:
        for row in self.ledger.photos([State.COMPLETED], current_only=False):
            self.claims.update(dict.fromkeys(row.output_paths, row.path))

    async def settle(self, row: PhotoRow) -> bool:
        """Poll the photo's order and place its results; False when they are not ready."""
        try:
            if row.order_id is None:
                raise ResultRejected("charged without an order id: cannot be collected")
            details = await retrying(
                lambda: self._poll(str(row.order_id), row.service), self.backoff
            )
            if not details.generated_images:
                if details.status.casefold() in _FAILED_STATUSES:
                    raise ResultRejected(f"the API reports order {row.order_id} {details.status}")
                return False
            # Ready: claimed before anything is downloaded, so two collects of one order
            # (two manifests with a folder in common, a rush beside a --wait) fetch it once.
            # Looked at before (another collect may have placed it and hold it still) and
            # after the claim (it may have placed it and let go just now).
            if _still_to_collect(self.ledger.get(row.id)):
                if not self.ledger.claim_result(row.id):
                    self.held.add(row.id)
                    return False
                self.held.discard(row.id)
            if not _still_to_collect(self.ledger.get(row.id)):
                self.held.discard(row.id)
                self.elsewhere += 1  # another collect placed it while this one polled
                self._progress()
                return True
            paths = await self._place(row, details.generated_images)
        except (ResultRejected, RequestRejected) as exc:
            reason = exc.reason if isinstance(exc, RequestRejected) else str(exc)
            self.ledger.mark_failed(row.id, reason, retryable=False)
            self.failures.append((shown(row.path), reason))
            log.warning("%s: result failed for good: %s", row.path, reason)
        except (TransientError, RateLimited, AuthRefused) as exc:
            if isinstance(exc, AuthRefused) and exc.endpoint != "result":
                raise  # the key itself is refused: nothing else will work either
            # Paid and still on the server: left submitted for a later poll, never failed.
            log.warning("%s: results not fetched yet (%s); will try again", row.path, exc)
            return False
        else:
            self.ledger.mark_completed(row.id, [g.src for g in details.generated_images], paths)
            self.completed += 1
        self._progress()
        return True

    def _progress(self) -> None:
        if self.on_progress is not None:
            settled = self.completed + len(self.failures) + self.elsewhere
            self.on_progress(settled, self.total)

    async def _poll(self, order_id: str, service: str) -> OrderDetails:
        self.polls += 1
        return await self.client.order(order_id, service)

    async def _place(self, row: PhotoRow, images: Sequence[GeneratedImage]) -> list[str]:
        directory = self._directory(row)
        stem = result_stem(Path(row.path).stem)
        temps: list[Path] = []
        try:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            ensure_inside(directory, self.output)
            exts = []
            for n, image in enumerate(images, 1):
                temps.append(directory / temp_name(stem, f"_{n}"))
                exts.append(await self._fetch(image, temps[-1], row, n))
            finals = self._claim(row, directory, exts, temps)
            await asyncio.to_thread(commit_files, list(zip(temps, finals, strict=True)), directory)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                # This photo's path only (fitted_directory keeps within the usual limits).
                raise ResultRejected(f"its result's path is too long for the disk: {exc}") from exc
            # The local disk, not the photo: every other photo would meet it too.
            raise PipelineError(
                f"cannot write results into {directory}: {exc}; "
                "check that the output folder is writable and has free space"
            ) from exc
        finally:
            unlink_all(temps)  # after the renames there is nothing left to remove
        self.downloads += len(finals)
        return [str(p) for p in finals]

    async def _fetch(self, image: GeneratedImage, temp: Path, row: PhotoRow, n: int) -> str:
        attempt = 1
        while True:
            await retrying(lambda: self.client.fetch_result(image, temp, row.service), self.backoff)
            try:
                return await asyncio.to_thread(decoded_extension, temp)
            except ResultTooBig as exc:
                # Its header says so: downloading it again would say the same.
                raise ResultRejected(f"result {n} of order {row.order_id} is {exc}") from exc
            except ResultRejected as exc:
                if attempt >= _DECODE_TRIES:
                    raise ResultRejected(
                        f"result {n} of order {row.order_id} does not decode as an image: {exc}"
                    ) from exc
            attempt += 1

    def _directory(self, row: PhotoRow) -> Path:
        """output/<folder>/<subfolders below the folder root>, all names from the ledger."""
        photo = Path(row.path)
        # The manifest's folder that holds the photo, whichever manifest found it first.
        holders = [
            (name, root)
            for name, root in (self.folder_roots or {}).items()
            if photo.is_relative_to(root)
        ]
        if holders:
            folder, root = max(holders, key=lambda held: len(held[1].parts))
        else:
            folder, root = row.folder, derived_root(photo, row.folder)
        try:
            below = safe_parts(str(photo.parent.relative_to(root)))
        except ValueError:
            below = ()
        directory = self.output.joinpath(*safe_parts(folder), *below)
        ensure_inside(directory, self.output)
        return fitted_directory(directory, self.output)

    def _claim(
        self, row: PhotoRow, directory: Path, exts: Sequence[str], contents: Sequence[Path] = ()
    ) -> list[Path]:
        """Final names: <stem>.<ext>, _2, _3...; another photo's name is never overwritten,
        nor a file aihd did not write (one on disk that no photo of the ledger claims)."""
        photo = Path(row.path)
        stem, name = result_stem(photo.stem), result_stem(photo.name)
        # Made lazily: the first name fits almost always (the whole list cost ~10 ms a photo).
        bases = itertools.chain(
            (stem, name, f"{stem}-{row.id}"),
            (f"{stem}-{row.id}-{n}" for n in range(2, 1000)),
        )
        # A file already there with the very bytes about to be written is ours from an earlier
        # collect the ledger did not hear of (killed before it recorded them; a duplicate's
        # copies): writing it again destroys nothing.
        sources = [str(p) for p in contents]
        if not sources and row.state is State.DUPLICATE and row.duplicate_of is not None:
            sources = list(self.ledger.get(row.duplicate_of).output_paths)
        sources += [""] * len(exts)
        for base in bases:
            finals = [
                directory / f"{base}{'' if n == 1 else f'_{n}'}.{ext}"
                for n, ext in enumerate(exts, 1)
            ]
            if all(self._ours(p, row.path, s) for p, s in zip(finals, sources, strict=False)):
                break
        for final in finals:
            ensure_inside(final, self.output)
            self.claims[str(final)] = row.path
        return finals

    def _ours(self, final: Path, photo_path: str, content: str = "") -> bool:
        """May this photo's result be written at ``final``? Never over a file aihd did not
        write: one no photo claims, unless it already holds exactly ``content``'s bytes."""
        owner = self.claims.get(str(final))
        if owner is not None:
            return owner == photo_path
        if not final.exists() and not final.is_symlink():
            return True
        return bool(content) and _same_bytes(final, Path(content))

    async def copy_duplicates(self) -> int:
        """Give each duplicate of a completed photo its own copy of the results."""
        copied = 0
        scope = None if self.folder_roots is None else [str(r) for r in self.folder_roots.values()]
        for row in self.ledger.photos([State.DUPLICATE], scope=scope):
            if not folder_matches(row.folder, self.folders):
                continue
            original = self.ledger.get(row.duplicate_of) if row.duplicate_of else None
            if original is None or original.state is not State.COMPLETED:
                continue
            sources = [Path(p) for p in original.output_paths]
            try:
                directory = self._directory(row)
                finals = self._claim(row, directory, [s.suffix.lstrip(".") for s in sources])
                written = await asyncio.to_thread(copy_results, sources, finals, directory)
            except (ResultRejected, OSError) as exc:
                log.warning("%s: no copy of its original's results: %s", row.path, exc)
                continue
            copied += written
            paths = [str(p) for p in finals]
            if list(row.output_paths) != paths and all(map(Path.is_file, finals)):
                self.ledger.set_output_paths(row.id, paths)  # `aihd export` shows them
        return copied


def _still_to_collect(row: PhotoRow) -> bool:
    """Submitted, or charged with a failed result: collect's to place."""
    return row.state is State.SUBMITTED or (row.state is State.FAILED and row.charged)


# `aihd serve` collects photo by photo as each result is ready (pipeline/serve/results.py).
PhotoCollector = _Collector


def _same_bytes(one: Path, other: Path) -> bool:
    try:
        return not one.is_symlink() and filecmp.cmp(one, other, shallow=False)
    except OSError:
        return False


def _due_at(row: PhotoRow, eta_scale: float, now: float) -> float:
    """The monotonic time at which the photo's eta has passed (now if it has no eta).

    The wall clock only turns the stored submission time into how long ago that was; from
    there on polls are scheduled on the monotonic clock, and the API's status says whether
    the result is ready. A submission time in the future means the clock was set back since:
    nothing can be told from it, so the order is polled at once (and again every few seconds
    with --wait) rather than after an hour's wait, or never.
    """
    if row.eta is None or row.submitted_at is None:
        return now
    submitted = datetime.fromisoformat(row.submitted_at)
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    elapsed = time.time() - submitted.timestamp()
    if elapsed < 0:
        return now
    return now + max(0.0, row.eta * eta_scale - elapsed)
