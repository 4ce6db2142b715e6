"""What the v3 routes share: their paths, the success envelope, and timing."""

from __future__ import annotations

__all__ = [
    "ASSET_PATH",
    "ORDERS_PATH",
    "ORDER_PATH",
    "PROCESS_PATH",
    "PROCESS_POST_PATH",
    "PROJECTS_PATH",
    "PROJECT_PATH",
    "RESULT_PATH",
    "TEMP_PATH",
    "TOOLS_PATH",
    "ok",
    "origin",
    "process_seconds",
]

from typing import Any, Final

from aiohttp import web

from .replies import STATE

PROJECTS_PATH: Final = "/v3/project"
PROJECT_PATH: Final = "/v3/project/{project_id}"
ORDERS_PATH: Final = "/v3/order"
ORDER_PATH: Final = "/v3/order/{order_id}"
PROCESS_POST_PATH: Final = "/v3/process"
PROCESS_PATH: Final = "/v3/process/{process_id}"
# On app.aihomedesign.com in reality, without auth; the emulator serves it beside the API.
TOOLS_PATH: Final = "/api/tools"
RESULT_PATH: Final = "/_sandbox/v3/results/{result_id}.jpg"  # a lasting "src"
TEMP_PATH: Final = "/_sandbox/v3/temp/{result_id}.jpg"  # temp_src, signed, may expire
ASSET_PATH: Final = "/_sandbox/v3/assets/{asset_id}"  # an uploaded asset's bytes


def ok(
    request: web.Request,
    body: Any,
    status: int = 200,
    pagination: dict[str, int] | None = None,
) -> web.Response:
    """A success in the envelope the emulator plays now: wrapped in "data", or bare."""
    if request.app[STATE].v3.readings.envelope == "bare":
        return web.json_response(body, status=status)
    wrapped: dict[str, Any] = {"data": body, "message": "ok"}
    if pagination is not None:
        wrapped["pagination"] = pagination
    return web.json_response(wrapped, status=status)


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def process_seconds(request: web.Request) -> float:
    """A new process's time from start to end: the v1 eta, scaled as v1's is."""
    config = request.app[STATE].config
    return config.eta_seconds * config.time_scale
