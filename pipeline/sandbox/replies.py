"""What every route of the local emulator shares: its state's key, the API's error shape, time."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from pipeline import api

from .state import SandboxState

STATE = web.AppKey("state", SandboxState)


def error(status: int, message: str, key: str | None = None) -> web.Response:
    """An error in the API's shape: {"error", "key"} (the 429 has no key)."""
    body: api.ErrorBody = {"error": message}
    if key is not None:
        body["key"] = key
    return web.json_response(body, status=status)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
