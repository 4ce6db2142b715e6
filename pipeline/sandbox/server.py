"""Starting and stopping a local emulator: in the caller's loop, in a thread, or until a signal."""

from __future__ import annotations

__all__ = ["SHUTDOWN_SECONDS", "AppFactory", "Sandbox", "SandboxThread", "run_forever", "serve"]

import asyncio
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

from pipeline import eventloop

from .app import make_app
from .catalog import Kind, Spelling
from .state import Faults, SandboxConfig, SandboxState, SandboxStats
from .v3_readings import V3Readings
from .webhooks import Webhooks

# Stalled handlers would otherwise hold a stop for aiohttp's default 60 s.
SHUTDOWN_SECONDS = 1.0
# Builds the emulator's aiohttp app from its state; tests/hostile_server.py wraps it.
AppFactory = Callable[[SandboxState], web.Application]


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A handle on a running local emulator; stats and faults are safe from any thread."""

    url: str
    api_key: str = field(repr=False)
    _state: SandboxState = field(repr=False)

    def stats(self) -> SandboxStats:
        """A snapshot of requests, uploads, charges and downloads so far."""
        return self._state.stats()

    def rotate_key(self, new_key: str) -> None:
        """The account's key is regenerated: the old one is refused from now on."""
        self._state.api_key = new_key

    def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults (and restart their random draws from faults.seed)."""
        self._state.set_faults(faults)

    def delete_v3_project(self, project_id: str) -> bool:
        """Delete a v3 project, as its owner may between two nights; False if none had it."""
        return self._state.v3.delete_project(project_id)

    def rename_catalog_entry(self, kind: Kind, which: str, spelling: Spelling, new: str) -> None:
        """Rename one spelling (id, name or title) of a space, its widget or an item, as
        the API may between two nights; orders must name it as it is spelled now."""
        self._state.catalog.rename(kind, which, spelling, new)

    def hold_results(self, held: bool) -> None:
        """While held, every charged v1 order says "processing", whatever its eta: results
        become ready when the test says so, not when the machine's load lets them."""
        self._state.results_held = held

    def set_webhooks(self, webhooks: Webhooks) -> None:
        """Send the account's webhooks so from now on (to new URLs, with other switches)."""
        self._state.webhooks.configure(webhooks)

    def set_v3_readings(self, readings: V3Readings) -> None:
        """Play these readings of the v3 unknowns from now on."""
        self._state.v3.set_readings(readings)


@asynccontextmanager
async def serve(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    app_factory: AppFactory = make_app,
) -> AsyncIterator[Sandbox]:
    """Run a local emulator in the current event loop; its files are removed when it stops."""
    workdir = Path(tempfile.mkdtemp(prefix="aihd-sandbox-"))
    try:
        state = SandboxState(config, workdir)
        runner = web.AppRunner(
            app_factory(state),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_port = runner.addresses[0][1]
            yield Sandbox(url=f"http://{host}:{bound_port}", api_key=config.api_key, _state=state)
        finally:
            await runner.cleanup()
            state.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class SandboxThread:
    """Run a local emulator in a background thread with its own event loop (for sync callers)."""

    def __init__(
        self,
        config: SandboxConfig,
        host: str = "127.0.0.1",
        port: int = 0,
        app_factory: AppFactory = make_app,
    ) -> None:
        self._config, self._host, self._port = config, host, port
        self._app_factory = app_factory
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._sandbox: Sandbox | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Sandbox:
        self._thread = threading.Thread(target=self._run, name="aihd-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._sandbox is None:
            self._thread.join()
            raise RuntimeError("the local emulator did not start") from self._error
        return self._sandbox

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()
        if self._error is not None and exc is None:
            raise RuntimeError("the local emulator failed while stopping") from self._error

    def _run(self) -> None:
        try:
            eventloop.run(self._serve())
        except BaseException as exc:  # handed to the caller's thread in __enter__/__exit__
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._config, self._host, self._port, self._app_factory) as sandbox:
            self._sandbox = sandbox
            self._ready.set()
            await self._stop.wait()


def run_forever(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve a local emulator until SIGINT or SIGTERM, after printing where it is."""
    eventloop.run(_serve_until_signal(config, host, port))


async def _serve_until_signal(config: SandboxConfig, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(config, host, port) as sandbox:
            print(
                "aihd sandbox (local emulator of the AI HomeDesign API, not the real service): "
                f"{sandbox.url}",
                flush=True,
            )
            print(f"API key: {sandbox.api_key}", flush=True)
            print(f"export AIHD_BASE_URL={sandbox.url} AIHD_API_KEY={sandbox.api_key}", flush=True)
            await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
