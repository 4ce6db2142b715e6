"""What the local emulator's webhooks say, and when they leave (see webhooks.py for how).

Each payload is made when it is sent, from the order as it stands then, in the documented
shape: v1's generated image (docs/api/AIHOMEDESIGN_API.md 2.6) once an order finishes, v1's
upscale (2.7) once an upscale is ready, v3's ``process.completed`` (AIHOMEDESIGN_V3.md 7) once a
process ends, done or failed.
"""

from __future__ import annotations

__all__ = [
    "UPSCALED_PATH",
    "order_finished_later",
    "process_ended_later",
    "upscale_ready_later",
]

import time
from typing import Any

from aiohttp import web

from pipeline import api
from pipeline.api import v1_shapes, v3_shapes

from .replies import STATE, now_iso
from .state import Order

UPSCALED_PATH = "/_sandbox/upscaled/{generated_id}.jpg"


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def order_finished_later(request: web.Request, order: Order) -> None:
    """After the order's scaled eta, one v1 webhook per generated image of this charge."""
    state = request.app[STATE]
    origin, image_id = _origin(request), order.image_id
    seconds = state.config.eta_seconds * state.config.time_scale

    def payloads() -> list[dict[str, Any]] | None:
        if order.image_id != image_id:  # charged again meanwhile: that charge sends its own
            return []
        status, generated = state.status(order)
        if status != "finished":
            return None  # the timer fired a little early
        return [
            dict(
                v1_shapes.GeneratedImageWebhook(
                    order_id=order.id,
                    image=v1_shapes.WebhookImage(
                        id=generated_id,
                        before_src=f"{origin}/_sandbox/before/{order.id}",
                        after_src=f"{origin}/_sandbox/results/{generated_id}.jpg",
                        regenerated=False,
                        style="",
                        color="",
                        space=order.space,
                        sky_style="",
                        shadow_removal=False,
                        material="",
                        created_at=now_iso(),
                    ),
                    service_name=api.SERVICE,
                    user_id=state.user_id,
                )
            )
            for generated_id in generated
        ]

    state.webhooks.later_each(seconds, payloads)


def upscale_ready_later(request: web.Request, generated_id: str, seconds: float) -> None:
    state = request.app[STATE]
    src = _origin(request) + UPSCALED_PATH.format(generated_id=generated_id)
    body = v1_shapes.UpscaleWebhook(
        generated_image_id=generated_id, upscaled_image_src=src, user_id=state.user_id
    )
    state.webhooks.later_each(
        seconds, lambda: None if state.upscaled(generated_id) is None else [dict(body)]
    )


def process_ended_later(
    request: web.Request, process_id: str, seconds: float, final_assets: Any
) -> None:
    """v3: ``process.completed`` once the process ends; ``final_assets(request)`` then."""
    state = request.app[STATE]

    def payloads() -> list[dict[str, Any]] | None:
        process = state.v3.process(process_id)
        if process is None:
            return []
        status = process.status(time.monotonic())
        if status not in (v3_shapes.PROCESS_DONE, v3_shapes.PROCESS_FAILED):
            return None  # the timer fired a little early
        return [
            {
                "event": v3_shapes.EVENT_PROCESS_COMPLETED,
                "process_id": process.id,
                "order_id": process.order_id,
                "tool": process.tool,
                "status": status,
                "final_assets": final_assets(process) if status == v3_shapes.PROCESS_DONE else [],
            }
        ]

    state.webhooks.later_each(seconds, payloads)
