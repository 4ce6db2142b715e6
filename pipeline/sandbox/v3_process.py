"""POST /v3/process (the charge), GET /v3/process/{id}, and the results' downloads.

A process is charged when it is accepted, in the account's window shared with v1 orders when
the window counts processes (v3_readings.py). The gate's faults apply to the POST as to v1's
order POST: a lost answer after the charge, a held answer, 5xx or resets before it.
"""

from __future__ import annotations

__all__ = ["BAD_BODY", "create_process", "process_details", "result_image", "temp_image"]

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .notify import process_ended_later
from .replies import LOST_AFTER_CHARGE, STATE, client_left, drop_connection, error, now_iso
from .state import RATE_LIMIT_MESSAGE
from .v3_catalog import TOOL_NOT_FOUND, TOOLS, widget_problem
from .v3_images import write_result
from .v3_replies import RESULT_PATH, TEMP_PATH, ok, origin, process_seconds
from .v3_state import Process, V3Store, new_id

BAD_BODY = "body must be JSON with order_id, tool, asset_map{slot: asset_id} and widgets"


@dataclass(frozen=True, slots=True)
class _Request:
    order_id: str
    tool: str
    asset_map: dict[str, str]
    widgets: list[tuple[str, list[str]]]
    process_group_id: str | None


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _parse(body: object) -> _Request | None:
    """The body if it has the documented shape (widgets may be left out), else None."""
    if not isinstance(body, dict):
        return None
    order_id, tool, asset_map = body.get("order_id"), body.get("tool"), body.get("asset_map")
    widgets, group = body.get("widgets", []), body.get("process_group_id")
    if not (isinstance(order_id, str) and isinstance(tool, str) and isinstance(asset_map, dict)):
        return None
    if not asset_map or not all(isinstance(value, str) for value in asset_map.values()):
        return None
    if not isinstance(widgets, list) or not (group is None or isinstance(group, str)):
        return None
    chosen: list[tuple[str, list[str]]] = []
    for widget in widgets:
        if not isinstance(widget, dict):
            return None
        slug, items = widget.get("slug"), widget.get("item_slugs", [])
        if not (isinstance(slug, str) and _strings(items)):
            return None
        chosen.append((slug, list(items)))
    return _Request(order_id, tool, dict(asset_map), chosen, group)


async def create_process(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = state.v3
    try:
        asked = _parse(await request.json())
    except ValueError:
        asked = None
    if asked is None:
        return error(400, BAD_BODY, "api_error_invalid_request")
    tool = TOOLS.get(asked.tool)
    if tool is None:
        return error(500, TOOL_NOT_FOUND, "api_error_tool_not_found")
    order = store.order(asked.order_id)
    if order is None:
        return error(404, "order not found", "api_error_order_not_found")
    if sorted(asked.asset_map) != sorted(tool.slots):
        message = f"asset_map keys {list(asked.asset_map)} do not match the slots of {tool.slug}"
        expected = ", ".join(f"{slot!r}: asset_id" for slot in tool.slots)
        return error(422, f"{message}: {{{expected}}}", "api_error_invalid_asset_map")
    assets = [order.asset(asked.asset_map[slot]) for slot in tool.slots]
    asset = assets[0]
    if asset is None or None in assets:
        return error(404, "asset not found in this order", "api_error_asset_not_found")
    readings = store.readings
    refused = readings.omitted_widgets == "refused"
    if problem := widget_problem(tool, asked.widgets, omitted_refused=refused):
        return error(422, problem, "api_error_invalid_widget")
    in_window = readings.window_counts == "processes"
    in_flight = store.in_flight_now() if in_window and readings.window_in_flight else 0
    if not state.charge_process(asset.sha256, in_window=in_window, in_flight=in_flight):
        return error(429, RATE_LIMIT_MESSAGE)
    process = Process(
        id=new_id(),
        order_id=order.id,
        tool=tool.slug,
        input=asset,
        widgets=tuple((slug, tuple(items)) for slug, items in asked.widgets),
        process_group_id=asked.process_group_id,
        created_at=now_iso(),
        started=time.monotonic(),
        seconds=process_seconds(request),
        fails=state.draw_process_failure(),
    )
    store.add_process(order, process)
    process_ended_later(
        request, process.id, process.seconds, lambda ended: [_final_asset(request, ended)]
    )
    if request[LOST_AFTER_CHARGE] or (state.draw_hold() and await client_left(request)):
        return drop_connection(request)
    if state.draw_error_after_charge():
        return error(500, "internal server error", "api_error_internal")
    ids: dict[str, Any] = (
        {"process_ids": [process.id]}
        if readings.process_id_field == "process_ids"
        else {"process_id": process.id}
    )
    return ok(request, ids, status=201)


# Results --------------------------------------------------------------------------------------


def _signature(store: V3Store, result_id: str, thumb: str, minted: str) -> str:
    message = f"{result_id}:{thumb}:{minted}".encode()
    return hmac.new(store.link_secret, message, hashlib.sha256).hexdigest()[:32]


def _temp_link(request: web.Request, process: Process, thumb: bool) -> str:
    """A signed link to the result, minted now (it expires if the readings say so)."""
    store = request.app[STATE].v3
    flag, minted = "1" if thumb else "0", str(round(time.monotonic() * 1000))
    query = f"thumb={flag}&t={minted}&sig={_signature(store, process.result_id, flag, minted)}"
    return f"{origin(request)}{TEMP_PATH.format(result_id=process.result_id)}?{query}"


def _final_asset(request: web.Request, process: Process) -> dict[str, Any]:
    final: dict[str, Any] = {"asset_id": process.result_id, "asset_type": "image"}
    if request.app[STATE].v3.readings.result_src:
        final["src"] = origin(request) + RESULT_PATH.format(result_id=process.result_id)
    final["temp_src"] = _temp_link(request, process, thumb=False)
    final["temp_thumbnail_src"] = _temp_link(request, process, thumb=True)
    return final


async def process_details(request: web.Request) -> web.Response:
    state = request.app[STATE]
    process = state.v3.process(request.match_info["process_id"])
    if process is None or not state.shows_charge(process.started):
        return error(404, "process not found", "api_error_process_not_found")
    status = process.status(time.monotonic())
    record: dict[str, Any] = {
        "id": process.id,
        "order_id": process.order_id,
        "tool": process.tool,
        "status": status,
        "process_group_id": process.process_group_id,
        "final_assets": [_final_asset(request, process)] if status == "done" else [],
        "created_at": process.created_at,
    }
    if status == "failed":
        record["error_key"] = "api_error_process_failed"
    return ok(request, record)


async def _serve_result(request: web.Request, process: Process, thumb: bool) -> web.StreamResponse:
    state = request.app[STATE]
    if process.status(time.monotonic()) != "done":
        return error(404, "result not found", "api_error_not_found")
    # The id was found in our own table, so it is safe as a file name.
    cached = state.results_dir / f"v3-{process.result_id}{'-thumb' if thumb else ''}.jpg"
    if not cached.exists():
        photo = process.input.photo
        await asyncio.to_thread(write_result, photo, process.tool, cached, thumb)
    state.count("downloads")
    return web.FileResponse(cached, headers={"Content-Type": "image/jpeg"})


async def result_image(request: web.Request) -> web.StreamResponse:
    """A result's lasting link (final_assets[].src)."""
    process = request.app[STATE].v3.result(request.match_info["result_id"])
    if process is None:
        return error(404, "result not found", "api_error_not_found")
    return await _serve_result(request, process, thumb=False)


async def temp_image(request: web.Request) -> web.StreamResponse:
    """A result's temporary link: refused (403) once older than the readings allow."""
    store = request.app[STATE].v3
    result_id = request.match_info["result_id"]
    thumb, minted = request.query.get("thumb", "0"), request.query.get("t", "")
    signature = request.query.get("sig", "")
    process = store.result(result_id)
    expected = _signature(store, result_id, thumb, minted)
    if process is None or not hmac.compare_digest(signature, expected):
        return error(403, "request signature does not match", "api_error_link_invalid")
    lifetime = store.readings.temp_link_seconds
    if lifetime > 0 and time.monotonic() * 1000 - int(minted) > lifetime * 1000:
        return error(403, "request has expired", "api_error_link_expired")
    return await _serve_result(request, process, thumb=thumb == "1")
