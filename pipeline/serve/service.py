"""``aihd serve``: the always-on process, made of the parts beside this module.

Ordering is the runner's, unchanged: one ``Runner`` per manifest (each with a ledger handle of
its own, so their claims keep them apart as they keep runs apart), all sharing the account's
``OrderWindow`` and the ledger's window, fed by watching.py instead of one scan. Results come
by webhook or polling (results.py), upscales by webhook (upscaling.py); hooks.py, /healthz and
/metrics answer on web.py's app. A stop (SIGTERM) stops taking photos, lets order and upscale
POSTs already sent be answered and recorded (``stop_within``), and returns; SIGHUP (``reload``)
reads the manifests again, keeping one that is now wrong as it was, and saying why.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pipeline.api.factory import AnyVersion
from pipeline.bootclock import new_owner
from pipeline.collect.collector import PhotoCollector
from pipeline.errors import AuthRefused, PipelineError
from pipeline.ledger import Ledger
from pipeline.manifest.loader import Manifest, load_manifest
from pipeline.ordering.flow import RunCounters
from pipeline.ordering.progress import Progress
from pipeline.ordering.runner import RunLimits, Runner
from pipeline.ordering.window import OrderWindow
from pipeline.retry import Backoff
from pipeline.serve.dispatch import Dispatcher
from pipeline.serve.results import Results
from pipeline.serve.upscaling import Upscaler
from pipeline.serve.watching import Watching
from pipeline.stopping import StopSwitch

__all__ = ["ServeOptions", "Service"]

log = logging.getLogger("aihd")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    quiet_period: float | None = None  # None: the manifests' (the shortest)
    rescan: float | None = None  # None: the manifests' (the shortest)
    poll_seconds: float | None = None  # watch by polling (network mounts); None: inotify
    poll_after: float = 300.0  # a result is polled this long after its eta: webhook first
    stop_within: float = 5.0  # at a stop, how long POSTs already sent may take to answer
    refresh_seconds: float = 30.0  # look for photos charged by others (a run, a machine)
    upscale_seconds: float = 10.0  # send wished upscales this often
    limits: RunLimits = field(default_factory=lambda: RunLimits(concurrency=4))
    eta_scale: float = 1.0  # real seconds per eta second (a local emulator's time scale)

    def quiet_seconds(self, manifests: Sequence[Manifest]) -> float:
        """The quiet period served: this option's, else the manifests' shortest."""
        return self.quiet_period or min(m.quiet_period for m in manifests)

    def rescan_seconds(self, manifests: Sequence[Manifest]) -> float:
        """Seconds between looks at every folder: this option's, else the manifests' shortest."""
        return self.rescan or min(m.rescan for m in manifests)


class Service:
    """The service's parts, built on ledger handles ``open_handle`` gives (one per part)."""

    def __init__(
        self,
        manifests: Sequence[Manifest],
        open_handle: Callable[[], Ledger],
        client: AnyVersion,
        window: OrderWindow,
        options: ServeOptions,
        stop: StopSwitch,
        *,
        dispatcher: Dispatcher,
        refused: Counter[str],
        reload: asyncio.Event,
    ) -> None:
        self.manifests = list(manifests)
        self.options = options
        self.stop = stop
        self.client = client
        self.counters = RunCounters()
        self._handles: list[Ledger] = []
        self._open = open_handle
        self.catalog_read = False
        self.last_error: tuple[str, str] | None = None
        self.runners = [self._runner(m, window) for m in self.manifests]
        self.collecting = self._handle()
        if hasattr(self.collecting, "claim_batch"):
            self.collecting.claim_batch = 1  # PostgreSQL: claim only the photo collected
        self.watching = Watching(
            self.manifests,
            quiet_seconds=options.quiet_seconds(self.manifests),
            rescan_seconds=options.rescan_seconds(self.manifests),
            poll_seconds=options.poll_seconds,
            on_new_folder=self.reload_soon,
        )
        first = self.manifests[0]
        backoff = Backoff(first.retry.attempts, wait_max=first.retry.max_backoff)
        self.upscaler = Upscaler(
            self.collecting,
            client,
            upscale_roots=self._upscale_roots(),
            scope=self._scope(),
            backoff=backoff,
        )
        self.results = Results(
            self.collecting,
            self._collectors(backoff),
            poll_after=options.poll_after,
            eta_scale=options.eta_scale,
            concurrency=first.concurrency,
            on_completed=self.upscaler.wish,
            on_error=self.note_error,
        )
        self.dispatcher = dispatcher
        dispatcher.bind(self.collecting, self.results, self.upscaler, self.note_error)
        self.refused = refused  # the receiver's count of webhooks refused at the door
        self._reload = reload
        for runner in self.runners:
            runner.on_settled = self.results.submitted

    # -- building -----------------------------------------------------------------------------

    def _handle(self) -> Ledger:
        handle = self._open()
        handle.owner = new_owner()
        self._handles.append(handle)
        return handle

    def _runner(self, manifest: Manifest, window: OrderWindow) -> Runner:
        progress = Progress(
            bar=False,
            stream=sys.stderr,
            window=window,
            counters=self.counters,
            log_every_seconds=600,
        )
        return Runner(
            manifest,
            self._handle(),
            self.client,
            replace(self.options.limits, serving=True, stop_within=self.options.stop_within),
            window=window,
            progress=progress,
            counters=self.counters,
            stop=self.stop,
        )

    def _scope(self) -> list[str]:
        return [str(f.path) for m in self.manifests for f in m.folders]

    def _upscale_roots(self) -> list[str]:
        return [str(f.path) for m in self.manifests for f in m.upscales]

    def _collectors(self, backoff: Backoff) -> list[tuple[list[str], PhotoCollector]]:
        return [
            (
                [str(f.path) for f in m.folders],
                PhotoCollector(
                    self.collecting,
                    self.client,
                    m.output,
                    {f.name: f.path for f in m.folders},
                    backoff,
                    0,
                    None,
                ),
            )
            for m in self.manifests
        ]

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until stopped; a fatal error (the key refused) stops it and is raised."""
        stopping = asyncio.Event()
        started = time.monotonic()
        runs = [
            asyncio.create_task(r.run(started, feed=self._feed(i)), name=f"runner-{i}")
            for i, r in enumerate(self.runners)
        ]
        parts = [
            asyncio.create_task(self.watching.run(stopping), name="watching"),
            asyncio.create_task(self.results.run(stopping), name="results"),
            asyncio.create_task(self.dispatcher.run(stopping), name="hints"),
            asyncio.create_task(self._chores(stopping), name="chores"),
        ]
        try:
            await asyncio.wait(
                [*runs, asyncio.create_task(self.stop.event.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            self.stop.set("interrupted")  # a runner that ended on its own ends the service
            stopping.set()
            await self.upscaler.wait_posts(self.options.stop_within)
            await asyncio.gather(*runs, return_exceptions=True)
        finally:
            stopping.set()
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)
        for run in runs:
            if not run.cancelled() and (error := run.exception()) is not None:
                raise error
        if isinstance(self.stop.error, AuthRefused):
            raise self.stop.error

    def _feed(self, index: int) -> Callable[[Runner], Coroutine[None, None, None]]:
        async def feed(runner: Runner) -> None:
            self.catalog_read = True  # the runner resolved the catalog before feeding
            queue = self.watching.queues[index]
            while True:
                name, stats = await queue.get()
                await runner.take(name, stats)

        return feed

    async def _chores(self, stopping: asyncio.Event) -> None:
        """The start's catch-up, then: what others charged, upscales to send, claims to keep."""
        self.results.refresh(again=True)
        self.upscaler.wish_completed()
        # Upscales wished while no one served (`aihd upscale`, a service stopped midway) are
        # asked for at the first turn, as the catch-up's, not one upscale pass (10 s) later.
        self.upscaler.due = True
        last_refresh = last_rescan = last_upscale = time.monotonic()
        while not stopping.is_set():
            if self._reload.is_set():
                self._reload.clear()
                await self.reload()
            now = time.monotonic()
            try:
                if now - last_refresh >= self.options.refresh_seconds:
                    last_refresh = now
                    self.results.refresh()
                    self.collecting.renew_claims()
                    self.collecting.renew_result_claims()
                if now - last_rescan >= self.watching.rescan_seconds:
                    last_rescan = now
                    # Failures that may mend (the API away, a 5xx) are tried again, as the
                    # next night's run would; the rescan hands their files on again.
                    self.collecting.reset_failed(include_permanent=False)
                    self.watching.rescan_now()
                    self.results.refresh(again=True)
                    self.upscaler.wish_completed()
                if self.upscaler.due or now - last_upscale >= self.options.upscale_seconds:
                    last_upscale = now
                    await self.upscaler.request()
            except AuthRefused as exc:
                self.stop.set("auth", exc)
                return
            except PipelineError as exc:
                self.note_error(exc)
            await _sleep_or(stopping, 0.5 if self._reload.is_set() else 1.0)

    # -- reloading ----------------------------------------------------------------------------

    def reload_soon(self) -> None:
        """SIGHUP, or a new folder under a glob: read the manifests again (in the chores)."""
        self._reload.set()

    async def reload(self) -> None:
        for index, old in enumerate(self.manifests):
            try:
                new = await asyncio.to_thread(load_manifest, old.path)
                _same_account(old, new)
                await self.runners[index].use_manifest(new)
            except PipelineError as exc:
                log.error("%s: %s; serving it as it was before", old.path, exc)
                self.note_error(exc)
                continue
            if new.folders != old.folders:
                log.info("%s: read again, %d folders", new.path, len(new.folders))
            self.manifests[index] = new
        self.watching.use(self.manifests)
        self.upscaler.use(self._upscale_roots(), self._scope())
        first = self.manifests[0]
        self.results.use(self._collectors(Backoff(first.retry.attempts, first.retry.max_backoff)))

    # -- reporting ----------------------------------------------------------------------------

    def note_error(self, error: BaseException) -> None:
        if isinstance(error, AuthRefused):
            self.stop.set("auth", error)
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        self.last_error = (text, datetime.now(UTC).isoformat(timespec="seconds"))
        log.warning("%s", text)

    def close(self) -> None:
        for handle in self._handles:
            handle.release_claims()
            handle.release_result_claims()
            handle.close()


def _same_account(old: Manifest, new: Manifest) -> None:
    if (new.account, new.ledger, new.api_key_env) != (old.account, old.ledger, old.api_key_env):
        raise PipelineError(
            "account, ledger or api_key_env changed: restart `aihd serve` to serve another "
            "account (one process serves one account's ledger)"
        )


async def _sleep_or(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
