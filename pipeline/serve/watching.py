"""From the file system to the runners: which photos of which folders are complete, when.

The watcher says which folders changed; completeness.py says when to look at each and which of
its files are complete; each complete batch goes to the queue of the manifest whose folder it
is (its runner takes it from there). At each rescan (``rescan_now``, the service's) every
folder counts as changed: the safety net for changes a watcher missed. A change under a glob's
fixed root that no folder owns (a new listing) asks the service to read the manifests again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import suppress

from pipeline.manifest.loader import FolderSpec, Manifest
from pipeline.ordering.scan import FileStat
from pipeline.serve.completeness import Completeness, look
from pipeline.serve.watcher import FolderMap, watch

__all__ = ["Batch", "Watching"]

log = logging.getLogger("aihd")
Batch = tuple[str, list[FileStat]]  # a folder's name in its manifest, its complete photos


def _key(index: int, name: str) -> str:
    return f"{index}\x1f{name}"


class Watching:
    """Watches the served manifests' folders; complete photos go to ``queues[manifest]``."""

    def __init__(
        self,
        manifests: Sequence[Manifest],
        *,
        quiet_seconds: float,
        rescan_seconds: float,
        poll_seconds: float | None,
        on_new_folder: Callable[[], None],
    ) -> None:
        self.completeness = Completeness(quiet_seconds)
        self.rescan_seconds = rescan_seconds
        self.poll_seconds = poll_seconds
        self.queues: list[asyncio.Queue[Batch]] = [asyncio.Queue() for _ in manifests]
        self._on_new_folder = on_new_folder
        self._specs: dict[str, tuple[int, FolderSpec]] = {}
        self.map = FolderMap([], [])
        self._restart = asyncio.Event()  # the roots changed: watch the new ones
        self._wake = asyncio.Event()  # a folder became due sooner
        self.use(manifests)

    @property
    def folders(self) -> int:
        return len(self._specs)

    def use(self, manifests: Sequence[Manifest]) -> None:
        """Watch these manifests' folders from now on (a start, SIGHUP, a new folder): new
        folders count as changed now; folders gone are forgotten."""
        specs = {
            _key(i, folder.name): (i, folder)
            for i, manifest in enumerate(manifests)
            for folder in manifest.folders
        }
        added = [key for key in specs if key not in self._specs]
        self.completeness.forget([key for key in self._specs if key not in specs])
        self._specs = specs
        folder_map = FolderMap.of((_key(i, ""), m) for i, m in enumerate(manifests))
        if folder_map.roots != self.map.roots:
            self._restart.set()
        self.map = folder_map
        self.completeness.changed(added)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._watch(stop), name="watch"),
            asyncio.create_task(self._look(stop), name="look"),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._restart.clear()
            roots = self.map.roots
            done = asyncio.Event()  # ends this watch: a stop, or new roots
            ender = asyncio.create_task(_first(stop, self._restart, done))
            try:
                async for paths in watch(roots, done, poll_seconds=self.poll_seconds):
                    self._changed(paths)
            except OSError as exc:  # a root removed under the watcher: watch again
                log.warning("watching the folders: %s; watching again", exc)
                await _sleep_or(stop, 1.0)
            finally:
                ender.cancel()
            if not self._restart.is_set():
                await _sleep_or(stop, 1.0)  # the watch ended by itself (a root removed)

    def _changed(self, paths: set[str]) -> None:
        now = time.monotonic()
        keys: set[str] = set()
        unowned = False
        for path in paths:
            owners = self.map.owners(path)
            keys.update(owners)
            # A folder no entry owns yet, where a glob may match (a new listing): read the
            # manifests again. Files there are not asked about: a folder the glob does not
            # match (listings/x/docs) would make each of its files read the manifests again.
            if not owners and not unowned and self.map.under_pattern_root(path):
                unowned = os.path.isdir(path)
        self.completeness.changed(keys, now)
        self._wake.set()
        if unowned:
            self._on_new_folder()

    async def _look(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            for key in self.completeness.due(now):
                entry = self._specs.get(key)
                if entry is None:
                    continue
                index, folder = entry
                seen = await asyncio.to_thread(look, folder)
                if ready := self.completeness.complete(key, seen):
                    await self.queues[index].put((folder.name, ready))
            due = self.completeness.next_due()
            wait = 3600.0 if due is None else max(0.0, due - time.monotonic())
            if wait > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def look_again(self, paths: Sequence[str]) -> None:
        """Hand these files on once more at their folders' next look (photos ordered again on
        the desk: unchanged on disk, so no watcher event brings them back)."""
        keys = {key for path in paths for key in self.map.owners(path)}
        self.completeness.changed(keys, again=True)
        self._wake.set()

    def rescan_now(self) -> None:
        """Look at every folder again (the service's rescan, every ``rescan_seconds``)."""
        self.completeness.changed(list(self._specs), again=True)
        self._wake.set()


async def _first(*events: asyncio.Event) -> None:
    """Set the last event once any of the others is set."""
    *watched, target = events
    waits = [asyncio.create_task(event.wait()) for event in watched]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        target.set()
    finally:
        for wait in waits:
            wait.cancel()


async def _sleep_or(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True at once if ``stop`` is set meanwhile."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
