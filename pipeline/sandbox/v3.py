"""The local emulator's v3 API (docs/api/AIHOMEDESIGN_V3.md): projects, orders, the tools list.

Routes live beside v1's on the same app and state, so the key, faults, charges and the order
window are the account's, shared across versions. Uploads are in v3_orders.py, processes and
their results in v3_process.py; v3_readings.py says which reading of each unknown is played.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from aiohttp import web

from .replies import STATE, error, now_iso
from .v3_catalog import tools_list
from .v3_orders import create_order
from .v3_process import create_process, process_details, result_image, temp_image
from .v3_readings import V3Readings, readings_from_json
from .v3_replies import (
    ASSET_PATH,
    ORDER_PATH,
    ORDERS_PATH,
    PROCESS_PATH,
    PROCESS_POST_PATH,
    PROJECT_PATH,
    PROJECTS_PATH,
    RESULT_PATH,
    TEMP_PATH,
    TOOLS_PATH,
    ok,
    origin,
)
from .v3_state import Order, Process, Project

__all__ = ["PROCESS_POST_PATH", "add_v3_routes"]

MAX_PAGE_LIMIT = 30
SORTS = ("desc", "asc", "modified")


# Projects -------------------------------------------------------------------------------------


def _project_record(request: web.Request, project: Project) -> dict[str, Any]:
    store = request.app[STATE].v3
    return {
        "id": project.id,
        "address": project.address,
        "cover_src": "",
        "input_count": project.input_count,
        "result_count": store.result_count(project.id, time.monotonic()),
        "bookmarked_count": 0,
        "default": project.default,
        "updated_at": project.updated_at,
    }


async def create_project(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    address = body.get("address") if isinstance(body, dict) else None
    if not isinstance(address, str) or not address.strip():
        return error(400, "address is required", "api_error_invalid_request")
    project = request.app[STATE].v3.add_project(address.strip(), now_iso())
    return ok(request, _project_record(request, project), status=201)


def _int_query(request: web.Request, name: str, default: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        return None


async def list_projects(request: web.Request) -> web.Response:
    page, limit = _int_query(request, "page", 1), _int_query(request, "limit", 10)
    if page is None or page < 1:
        return error(400, "page must be an integer >= 1", "api_error_invalid_request")
    if limit is None or not 1 <= limit <= MAX_PAGE_LIMIT:
        message = f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}"
        return error(400, message, "api_error_invalid_request")
    sort = request.query.get("sort", "desc")
    if sort not in SORTS:
        return error(400, f"sort must be one of {list(SORTS)}", "api_error_invalid_request")
    projects = request.app[STATE].v3.projects()
    if search := request.query.get("s", "").strip().lower():
        projects = [project for project in projects if search in project.address.lower()]
    if sort == "modified":
        projects.sort(key=lambda project: project.updated, reverse=True)
    elif sort == "desc":
        projects.reverse()
    total = len(projects)
    shown = projects[(page - 1) * limit : page * limit]
    pagination = {
        "page": page,
        "limit": limit,
        "total": total,
        "total_pages": math.ceil(total / limit),
    }
    records = [_project_record(request, project) for project in shown]
    return ok(request, records, pagination=pagination)


async def project_details(request: web.Request) -> web.Response:
    project = request.app[STATE].v3.project(request.match_info["project_id"])
    if project is None:
        return error(404, "project not found", "api_error_project_not_found")
    return ok(request, _project_record(request, project))


# Orders ---------------------------------------------------------------------------------------


def shown_processes(request: web.Request, order: Order) -> list[Process]:
    """The order's processes its details show (a charge they lag behind is not shown yet)."""
    state = request.app[STATE]
    return [p for p in state.v3.processes(order) if state.shows_charge(p.started)]


def order_status(request: web.Request, order: Order) -> str:
    """idle before any process; active while one runs; then as its last process ended."""
    store = request.app[STATE].v3
    readings, now = store.readings, time.monotonic()
    statuses = [process.status(now) for process in shown_processes(request, order)]
    if not statuses:
        return "idle"
    if any(status in ("pending", "processing") for status in statuses):
        return readings.active_status
    return "failed" if statuses[-1] == "failed" else readings.done_status


async def order_details(request: web.Request) -> web.Response:
    store = request.app[STATE].v3
    order = store.order(request.match_info["order_id"])
    if order is None:
        return error(404, "order not found", "api_error_order_not_found")
    readings, now, base = store.readings, time.monotonic(), origin(request)
    processes: list[dict[str, Any]] = []
    for process in shown_processes(request, order):
        entry: dict[str, Any] = {readings.process_entry_id: process.id}
        if readings.process_entry_tool:
            entry["tool"] = process.tool
        entry.update(status=process.status(now), created_at=process.created_at)
        processes.append(entry)
    record = {
        "id": order.id,
        "order_id": order.id,
        "project_id": order.project_id,
        "status": order_status(request, order),
        "assets": [
            {
                "id": asset.id,
                "role": asset.role,
                "src": base + ASSET_PATH.format(asset_id=asset.id),
            }
            for asset in order.assets
        ],
        "processes": processes,
        "created_at": order.created_at,
    }
    return ok(request, record)


async def asset_image(request: web.Request) -> web.StreamResponse:
    asset_id = request.match_info["asset_id"]
    found = request.app[STATE].v3.asset(asset_id)
    if found is None:
        return error(404, "asset not found", "api_error_asset_not_found")
    if isinstance(found.photo, bytes):
        return web.Response(body=found.photo, content_type="application/octet-stream")
    return web.FileResponse(found.photo, headers={"Content-Type": "application/octet-stream"})


# Tools and /_sandbox --------------------------------------------------------------------------


async def tools(request: web.Request) -> web.Response:
    return web.json_response({"data": tools_list()})


async def set_readings(request: web.Request) -> web.Response:
    """POST /_sandbox/v3: a JSON object of V3Readings fields; the others go back to default."""
    try:
        readings = readings_from_json(await request.json())
    except ValueError as exc:
        return error(400, f"bad v3 readings: {exc}", "api_error_invalid_request")
    request.app[STATE].v3.set_readings(readings)
    return web.json_response(readings_json(readings))


async def delete_project(request: web.Request) -> web.Response:
    """DELETE /_sandbox/v3/project/{project_id}: the project is deleted (a user's doing)."""
    if not request.app[STATE].v3.delete_project(request.match_info["project_id"]):
        return error(404, "project not found", "api_error_project_not_found")
    return web.json_response({"deleted": request.match_info["project_id"]})


async def get_readings(request: web.Request) -> web.Response:
    return web.json_response(readings_json(request.app[STATE].v3.readings))


def readings_json(readings: V3Readings) -> dict[str, Any]:
    return dataclasses.asdict(readings)


def add_v3_routes(app: web.Application) -> None:
    """Add the v3 routes, the tools list and the v3 /_sandbox routes to the emulator's app."""
    app.router.add_post(PROJECTS_PATH, create_project)
    app.router.add_get(PROJECTS_PATH, list_projects)
    app.router.add_get(PROJECT_PATH, project_details)
    app.router.add_post(ORDERS_PATH, create_order)
    app.router.add_get(ORDER_PATH, order_details)
    app.router.add_post(PROCESS_POST_PATH, create_process)
    app.router.add_get(PROCESS_PATH, process_details)
    app.router.add_get(TOOLS_PATH, tools)
    app.router.add_get(RESULT_PATH, result_image)
    app.router.add_get(TEMP_PATH, temp_image)
    app.router.add_get(ASSET_PATH, asset_image)
    app.router.add_get("/_sandbox/v3", get_readings)
    app.router.add_post("/_sandbox/v3", set_readings)
    app.router.add_delete("/_sandbox/v3/project/{project_id}", delete_project)
