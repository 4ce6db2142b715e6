"""What every route of the local emulator shares: state, error shape, time, dropped answers."""

from __future__ import annotations

__all__ = ["LOST_AFTER_CHARGE", "STATE", "client_left", "drop_connection", "error", "now_iso"]

import asyncio
import socket
import struct
import time
from datetime import UTC, datetime

from aiohttp import web

from pipeline import api

from .state import SandboxState

STATE = web.AppKey("state", SandboxState)
# Set by the gate on a charged POST (v1 order, v3 process): charge it, then drop the answer.
LOST_AFTER_CHARGE = web.RequestKey("lost_after_charge", bool)


def error(status: int, message: str, key: str | None = None) -> web.Response:
    """An error in the API's shape: {"error", "key"} (the 429 has no key)."""
    body: api.ErrorBody = {"error": message}
    if key is not None:
        body["key"] = key
    return web.json_response(body, status=status)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def drop_connection(request: web.Request) -> web.Response:
    """Reset the TCP connection so the client sees a connection error, not a status."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns the close into an RST, like a proxy or NAT dropping the flow.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp fails to write this to the aborted transport and treats it as a client disconnect.
    return web.Response()


async def client_left(request: web.Request) -> bool:
    """Hold a charged order's (or process's) answer back: True if the client left meanwhile."""
    state = request.app[STATE]
    with state.holding_answer():
        deadline = time.monotonic() + state.faults.hold_seconds
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                return True
            await asyncio.sleep(0.02)
    return False
