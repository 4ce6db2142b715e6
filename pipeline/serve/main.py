"""``run_service``: the web side first (its port may be chosen by the system, and a local
emulator sends its webhooks there), then the API client, then the service until it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from pipeline.api.factory import AnyVersion
from pipeline.ledger import Ledger
from pipeline.manifest.loader import Manifest
from pipeline.ordering.window import OrderWindow
from pipeline.serve import reporting
from pipeline.serve.dispatch import Dispatcher
from pipeline.serve.hooks import Receiver
from pipeline.serve.metrics import Health, render
from pipeline.serve.service import ServeOptions, Service
from pipeline.serve.web import listening, make_app
from pipeline.stopping import StopSwitch

__all__ = ["run_service"]

LEFT_SECONDS = 1.0


async def run_service(
    manifests: Sequence[Manifest],
    open_handle: Callable[[], Ledger],
    open_client: Callable[[str], AbstractAsyncContextManager[AnyVersion]],
    window: OrderWindow,
    options: ServeOptions,
    *,
    secret: str,
    listen: tuple[str, int],
    stop: StopSwitch,
    reload: asyncio.Event,
    on_listening: Callable[[str], None],
    add_routes: Sequence[Callable[[web.Application], None]] = (),
    on_service: Callable[[Service], None] = lambda service: None,
) -> None:
    """Serve until ``stop``. ``open_client(hooks_url)``: the API's client (a local emulator is
    told to send its webhooks to ``hooks_url``, which holds the secret: never print it).
    ``add_routes``: more routes on the same app (the review desk's, issue 25). ``on_service``:
    the service once made (the desk tells it of photos ordered again)."""
    dispatcher = Dispatcher()
    receiver = Receiver(secret, dispatcher.offer)
    service: list[Service] = []
    reader = open_handle()  # /healthz and /metrics read the ledger on a handle of their own

    async def health() -> Health:
        if not service:
            return Health(False, False, "starting", None)
        return await asyncio.to_thread(reporting.health, service[0], reader)

    async def metrics() -> bytes:
        if not service:
            return b""
        return await asyncio.to_thread(render, lambda: reporting.figures(service[0], reader))

    try:
        async with listening(make_app(receiver, health, metrics, add_routes), *listen) as url:
            on_listening(url)
            try:
                async with open_client(f"{url}/hooks/{secret}") as client:
                    service.append(
                        Service(
                            manifests,
                            open_handle,
                            client,
                            window,
                            options,
                            stop,
                            dispatcher=dispatcher,
                            refused=receiver.counts,
                            reload=reload,
                        )
                    )
                    on_service(service[0])
                    await service[0].run()
                # The client is closed: a POST still unanswered after the stop's drain fails
                # now, and records its answer as lost (settled by the next start).
                await _let_finish(LEFT_SECONDS)
            finally:
                if service:
                    service[0].close()
    finally:
        reader.close()


async def _let_finish(seconds: float) -> None:
    """Let the tasks still running (answers being recorded) finish, for a moment at most."""
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current]
    if left:
        await asyncio.wait(left, timeout=seconds)
