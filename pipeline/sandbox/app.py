"""The local emulator's routes: the v1 API (docs/api/AIHOMEDESIGN_API.md 2.1-2.5, 5), /_sandbox."""

from __future__ import annotations

__all__ = [
    "Handler",
    "before_image",
    "gate",
    "items",
    "make_app",
    "order_details",
    "rename_entry",
    "result_image",
    "set_faults",
    "spaces",
    "stats",
    "submit",
]

import asyncio
import dataclasses
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pipeline import api

from .enhance import write_enhanced
from .notify import order_finished_later
from .replies import LOST_AFTER_CHARGE, STATE, client_left, drop_connection, error
from .state import (
    DOC_SERVICES,
    RATE_LIMIT_MESSAGE,
    Order,
    SandboxState,
    faults_from_json,
    stats_json,
)
from .uploads import upload
from .upscale import add_upscale_routes
from .v3 import PROCESS_POST_PATH, add_v3_routes
from .webhooks import webhooks_from_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests; on /v1 and /v3 apply latency and faults, then check the key and plan."""
    state = request.app[STATE]
    match = request.match_info
    if match.http_exception is not None:
        return error(match.http_exception.status, "not found", "api_error_not_found")
    state.count_request(f"{request.method} {match.route.resource.canonical}")  # type: ignore[union-attr]
    if not request.path.startswith(("/v1/", "/v3/")):
        return await handler(request)
    is_order_post = request.method == "POST" and request.path == api.SUBMIT_PATH
    is_process_post = request.method == "POST" and request.path == PROCESS_POST_PATH
    if is_order_post or is_process_post:  # every one received, whatever happens to it next
        state.count_post("order_posts" if is_order_post else "process_posts")
    faults = state.faults
    if faults.latency > 0:
        await asyncio.sleep(faults.latency)
    fault, lost = state.draw_faults(is_order_post or is_process_post, request.path)
    if fault == "reset":
        return drop_connection(request)
    if fault == "error":
        return error(500, "internal server error", "api_error_internal")
    if fault == "stall":
        await asyncio.sleep(faults.stall_seconds)
    if is_order_post and faults.order_delay > 0:
        await asyncio.sleep(faults.order_delay)
    elif request.method == "POST" and request.path == api.UPLOAD_PATH and faults.upload_delay:
        await asyncio.sleep(faults.upload_delay)
    key = request.headers.get(api.API_KEY_HEADER, "")
    if not secrets.compare_digest(key.encode(), state.api_key.encode()):
        return error(401, "invalid api key", "api_error_unauthorized")
    if not state.config.plan_allows_service:
        return error(403, "your plan does not include this service", "api_error_forbidden")
    request[LOST_AFTER_CHARGE] = lost
    try:
        return await handler(request)
    except ConnectionResetError:
        # The client went away mid-request (a kill test does this on purpose): no one is
        # left to answer, and it is not the emulator's error to log.
        return web.Response(status=400)


# Catalog --------------------------------------------------------------------------------------


async def spaces(request: web.Request) -> web.Response:
    state = request.app[STATE]
    service = request.query.get("service_name", "")
    if service not in DOC_SERVICES:
        return error(400, f"invalid service_name: {service!r}", "api_error_invalid_service")
    records: list[api.SpaceRecord] = []
    if service == api.SERVICE:
        records = [
            {
                "id": space.id,
                "name": space.name,
                "title": space.title,
                "description": f"{space.title} photos",
                "prompt": "",
                "icon_src": "",
                "is_active": True,
                "is_premium": False,
            }
            for space in state.catalog.spaces()
        ]
    return web.json_response({"data": records})


async def items(request: web.Request) -> web.Response:
    state = request.app[STATE]
    service = request.query.get("service_name", "")
    if service not in DOC_SERVICES:
        return error(400, f"invalid service_name: {service!r}", "api_error_invalid_service")
    name = request.query.get("space_name", "")
    space = state.catalog.space(name)
    if service != api.SERVICE or space is None:
        return error(400, f"invalid space_name: {name!r}", "api_error_invalid_space")
    record: api.WidgetRecord = {
        "id": space.widget_id,
        "title": space.widget_title,
        "description": "Optional touches applied with the enhancement",
        "is_optional": True,
        "items": [
            {"id": item.id, "title": item.title, "prompt": "", "icon_src": "", "is_premium": False}
            for item in space.items
        ],
        "priority": 1,
        "type": "multi",
    }
    return web.json_response({"data": [record]})


# Orders ---------------------------------------------------------------------------------------


def _submit_request(body: Any) -> api.SubmitRequest | None:
    """The body if it has the documented shape, else None."""
    if not isinstance(body, dict):
        return None
    order_id, space_name = body.get("order_id"), body.get("space_name")
    selected = body.get("selected_widgets")
    if not (isinstance(order_id, str) and isinstance(space_name, str)):
        return None
    if not isinstance(selected, list) or not all(
        isinstance(s, dict) and isinstance(s.get("id"), str) and isinstance(s.get("item_id"), str)
        for s in selected
    ):
        return None
    widgets: list[api.SelectedWidget] = [{"id": s["id"], "item_id": s["item_id"]} for s in selected]
    return {"order_id": order_id, "space_name": space_name, "selected_widgets": widgets}


async def submit(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        submitted = _submit_request(await request.json())
    except ValueError:
        submitted = None
    if submitted is None:
        message = "body must be JSON with order_id, space_name and selected_widgets[{id,item_id}]"
        return error(400, message, "api_error_invalid_request")
    order = state.order(submitted["order_id"])
    if order is None:
        return error(404, "order not found", "api_error_order_not_found")
    name = submitted["space_name"]
    space = state.catalog.space(name)
    if space is None:
        return error(422, f"invalid space_name: {name!r}", "api_error_invalid_space")
    offered = {item.id for item in space.items}
    for selected in submitted["selected_widgets"]:
        if selected["id"] != space.widget_id or selected["item_id"] not in offered:
            return error(422, f"widget item not offered for {name}", "api_error_invalid_widget")
    image_id = state.charge(order, name)
    if image_id is None:
        return error(429, RATE_LIMIT_MESSAGE)
    order_finished_later(request, order)
    if request[LOST_AFTER_CHARGE] or (state.draw_hold() and await client_left(request)):
        return drop_connection(request)
    if state.draw_error_after_charge():
        return error(500, "internal server error", "api_error_internal")
    body: api.SubmitResponse = {
        "order_id": order.id,
        "image_id": image_id,
        "eta": state.config.eta_seconds,
    }
    return web.json_response(body)


def _order_record(request: web.Request, order: Order) -> dict[str, Any]:
    state = request.app[STATE]
    status, generated_ids = state.status(order)
    # What the details show: nothing of a charge they do not show yet (Faults.details_lag).
    shown = status != "idle"
    origin = _origin(request)
    generated: list[dict[str, Any]] = [
        {
            "id": generated_id,
            "sequence": sequence,
            "src": f"{origin}/_sandbox/results/{generated_id}.jpg",
            "status": "regular_finished",
            "order_id": order.id,
            "using_free_plan": False,
            "space": order.space,
            "created_at": order.created_at,
        }
        for sequence, generated_id in enumerate(generated_ids, start=1)
    ]
    if state.config.upscale_in_order_details:
        for image in generated:
            if state.upscaled(image["id"]) is not None:
                image["upscaled_image_src"] = f"{origin}/_sandbox/upscaled/{image['id']}.jpg"
    return {
        "id": order.id,
        "user_id": state.user_id,
        "status": status,
        "service_name": api.SERVICE,
        "before_image_id": order.before_image_id,
        "before_image_src": f"{origin}/_sandbox/before/{order.id}",
        "space": order.space if shown else "",
        "generated_images": generated,
        "created_at": order.created_at,
        "image_id": order.image_id if shown else "",
        "service": {"name": api.SERVICE, "title": "AI Image Enhancement", "credit": 1},
    }


async def order_details(request: web.Request) -> web.Response:
    state = request.app[STATE]
    order = state.order(request.match_info["order_id"])
    if order is None:
        return error(404, "order not found", "api_error_order_not_found")
    return web.json_response(_order_record(request, order))


# /_sandbox ------------------------------------------------------------------------------------


async def result_image(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (delay := state.faults.download_delay) > 0:
        await asyncio.sleep(delay)
    generated_id = request.match_info["generated_id"]
    photo = state.result_photo(generated_id)
    if photo is None:
        return error(404, "result not found", "api_error_not_found")
    # The id was found in our own table, so it is safe as a file name.
    cached = state.results_dir / f"{generated_id}.jpg"
    if not cached.exists():
        await asyncio.get_running_loop().run_in_executor(None, write_enhanced, photo, cached)
    state.count("downloads")
    return web.FileResponse(cached, headers={"Content-Type": "image/jpeg"})


async def before_image(request: web.Request) -> web.StreamResponse:
    order = request.app[STATE].order(request.match_info["order_id"])
    if order is None:
        return error(404, "order not found", "api_error_order_not_found")
    if isinstance(order.photo, bytes):
        return web.Response(body=order.photo, content_type="application/octet-stream")
    return web.FileResponse(order.photo, headers={"Content-Type": "application/octet-stream"})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(stats_json(request.app[STATE].stats()))


async def set_faults(request: web.Request) -> web.Response:
    try:
        faults = faults_from_json(await request.json())
    except ValueError as exc:
        return error(400, f"bad faults: {exc}", "api_error_invalid_request")
    request.app[STATE].set_faults(faults)
    return web.json_response(dataclasses.asdict(faults))


async def rename_entry(request: web.Request) -> web.Response:
    """POST {"kind", "which", "spelling", "new"}: rename a catalog entry (catalog.py)."""
    try:
        body = await request.json()
        request.app[STATE].catalog.rename(
            body["kind"], body["which"], body["spelling"], body["new"]
        )
    except (ValueError, KeyError, TypeError) as exc:
        return error(400, f"bad rename: {exc}", "api_error_invalid_request")
    return web.json_response({"renamed": body})


async def set_webhooks(request: web.Request) -> web.Response:
    """POST /_sandbox/webhooks: a JSON object of Webhooks fields; the others go back to default."""
    try:
        settings = webhooks_from_json(await request.json())
    except ValueError as exc:
        return error(400, f"bad webhooks: {exc}", "api_error_invalid_request")
    request.app[STATE].webhooks.configure(settings)
    return web.json_response(dataclasses.asdict(settings))


async def _stop_webhooks(app: web.Application) -> None:
    await app[STATE].webhooks.close()


def make_app(state: SandboxState) -> web.Application:
    """The aiohttp application of one local emulator."""
    app = web.Application(middlewares=[gate])
    app[STATE] = state
    app.router.add_post(api.UPLOAD_PATH, upload)
    app.router.add_get(api.SPACES_PATH, spaces)
    app.router.add_get(api.ITEMS_PATH, items)
    app.router.add_post(api.SUBMIT_PATH, submit)
    app.router.add_get(api.ORDER_PATH, order_details)
    app.router.add_get("/_sandbox/results/{generated_id}.jpg", result_image)
    app.router.add_get("/_sandbox/before/{order_id}", before_image)
    app.router.add_get("/_sandbox/stats", stats)
    app.router.add_post("/_sandbox/faults", set_faults)
    app.router.add_post("/_sandbox/catalog/rename", rename_entry)
    app.router.add_post("/_sandbox/webhooks", set_webhooks)
    add_upscale_routes(app)
    add_v3_routes(app)
    app.on_cleanup.append(_stop_webhooks)
    return app
