"""v1 upscale (docs/api/AIHOMEDESIGN_API.md 2.7): ``POST .../download/upscale`` answers
``{status: "processing"}``; the upscaled photo's link then comes by webhook only (notify.py),
or also in the order's details when ``SandboxConfig.upscale_in_order_details`` plays that
reading. The photo itself: the enhanced result at twice its size."""

from __future__ import annotations

__all__ = ["UPSCALE_FACTOR", "add_upscale_routes", "upscale", "upscaled_image"]

import asyncio
import io
import os
import tempfile
from pathlib import Path

from aiohttp import web
from PIL import Image

from pipeline import api
from pipeline.api import v1_shapes

from .enhance import write_enhanced
from .notify import UPSCALED_PATH, upscale_ready_later
from .replies import STATE, drop_connection, error

UPSCALE_FACTOR = 2


async def upscale(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.count("upscale_posts")
    generated_id = request.match_info["generated_image_id"]
    seconds = state.upscale(generated_id)
    if seconds is None:
        return error(404, "generated image not found", "api_error_not_found")
    upscale_ready_later(request, generated_id, seconds)
    if state.draw_upscale_lost():
        return drop_connection(request)
    return web.json_response(v1_shapes.UpscaleResponse(status="processing"))


async def upscaled_image(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    generated_id = request.match_info["generated_id"]
    photo = state.upscaled(generated_id)
    if photo is None:
        return error(404, "upscaled image not found", "api_error_not_found")
    # The id was found in our own table, so it is safe as a file name.
    cached = state.results_dir / f"upscaled-{generated_id}.jpg"
    if not cached.exists():
        await asyncio.to_thread(_write_upscaled, photo, cached)
    state.count("downloads")
    return web.FileResponse(cached, headers={"Content-Type": "image/jpeg"})


def _write_upscaled(stored: bytes | Path, path: Path) -> None:
    enhanced = path.with_name(path.name + ".enhanced.jpg")
    write_enhanced(stored, enhanced)
    with Image.open(enhanced) as photo:
        bigger = photo.resize((photo.width * UPSCALE_FACTOR, photo.height * UPSCALE_FACTOR))
    enhanced.unlink(missing_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        buffer = io.BytesIO()
        bigger.save(buffer, "JPEG", quality=90)
        out.write(buffer.getvalue())
    os.replace(temp, path)


def add_upscale_routes(app: web.Application) -> None:
    app.router.add_post(api.UPSCALE_PATH, upscale)
    app.router.add_get(UPSCALED_PATH, upscaled_image)
