"""The service's HTTP side, on aiohttp's own server: webhooks, ``/healthz``, ``/metrics``.

One app, so the review desk (issue 25) can add its routes beside these (``add_routes``). No
access log: a webhook's path holds the secret. Bound to 127.0.0.1 by default; the README shows
how to put it behind Caddy or nginx for the HTTPS the vendor requires.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from aiohttp import web

from pipeline.errors import UsageError
from pipeline.serve.hooks import Receiver
from pipeline.serve.metrics import CONTENT_TYPE, Health

__all__ = ["HOOKS_PATH", "listening", "make_app"]

HOOKS_PATH = "/hooks/{secret}"
SHUTDOWN_SECONDS = 1.0  # a stop waits this long at most for requests in flight


def make_app(
    receiver: Receiver,
    health: Callable[[], Awaitable[Health]],
    metrics: Callable[[], Awaitable[bytes]],
    add_routes: Sequence[Callable[[web.Application], None]] = (),
) -> web.Application:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        state = await health()
        body = {
            "ok": state.ok,
            "ledger": "reachable" if state.ledger else "unreachable",
            "catalog": "read" if state.catalog else "not read yet",
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
        }
        return web.Response(
            text=json.dumps(body), status=200 if state.ok else 503, content_type="application/json"
        )

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=await metrics(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_post(HOOKS_PATH, receiver.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    for add in add_routes:
        add(app)
    return app


@asynccontextmanager
async def listening(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on host:port (0: a free port) until the block ends; yields its URL."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # nothing is served yet, nothing was spent
            raise UsageError(_bind_problem(host, port, exc)) from None
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        yield f"http://{shown}:{bound[1]}"
    finally:
        await runner.cleanup()


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    hint = {
        errno.EADDRINUSE: "another program listens there (another `aihd serve`?): stop it, or "
        "choose another --listen port",
        errno.EACCES: "ports below 1024 need privileges: choose a port above 1024 and let the "
        "proxy listen on 443",
        errno.EADDRNOTAVAIL: "no interface of this machine has that address: use 127.0.0.1",
    }.get(exc.errno or 0, "choose another --listen address")
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"cannot listen on {host}:{port}: {reason}; {hint}"
