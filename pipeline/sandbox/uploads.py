"""The upload route (docs/api/AIHOMEDESIGN_API.md 2.1): a photo in, a new order's id out.

Each distinct photo is stored once, by its sha256. A small upload is read whole, split in memory
(form.py) and kept in memory; a large one is read part by part and streamed to disk.
"""

from __future__ import annotations

__all__ = ["CHUNK_BYTES", "FORM_SLACK", "SMALL_BYTES", "upload"]

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import aiofiles
import aiofiles.os
from aiohttp import BodyPartReader, web

from pipeline import api

from .form import split_form
from .replies import STATE, error, now_iso
from .state import DOC_SERVICES, SandboxState, StoredPhoto

CHUNK_BYTES = 256 * 1024
SMALL_BYTES = 1024 * 1024  # uploads up to this size are stored in one go
FORM_SLACK = 64 * 1024  # a small upload's framing: boundaries, part headers, other fields


async def _store_photo(part: BodyPartReader, state: SandboxState) -> tuple[StoredPhoto, str] | None:
    """Keep the image part once per distinct photo; None if it is over 50 MB.

    A small photo stays in memory, with no thread hop or file system call, while the state's
    budget lasts: file creation per upload made the emulator, not the client, the bottleneck
    of the open-pipe benchmark. Beyond the budget it is written in one worker-thread call; a
    larger photo streams to disk chunk by chunk.
    """
    head = bytearray()
    while len(head) <= SMALL_BYTES and (chunk := await part.read_chunk(CHUNK_BYTES)):
        head += chunk
    if len(head) <= SMALL_BYTES:  # the whole part is here
        return await _keep_small(bytes(head), state)
    fd, temp_name = await asyncio.to_thread(tempfile.mkstemp, dir=state.uploads_dir)
    os.close(fd)
    temp = Path(temp_name)
    sha256, size = hashlib.sha256(head), len(head)
    try:
        async with aiofiles.open(temp, "wb") as out:
            await out.write(bytes(head))
            while chunk := await part.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > api.MAX_PHOTO_BYTES:
                    await part.release()  # drain the rest so the client reads our 400
                    await aiofiles.os.remove(temp)
                    return None
                sha256.update(chunk)
                await out.write(chunk)
        digest = sha256.hexdigest()
        # One file per distinct photo: re-uploads of the same bytes share it.
        stored = state.photos_dir / digest
        await aiofiles.os.replace(temp, stored)
        return stored, digest
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(temp)
        raise


async def _keep_small(data: bytes, state: SandboxState) -> tuple[StoredPhoto, str]:
    digest = hashlib.sha256(data).hexdigest()
    if (kept := state.keep_in_memory(digest, data)) is not None:
        return kept, digest
    return await asyncio.to_thread(state.write_photo, digest, data), digest


async def upload(request: web.Request) -> web.Response:
    length = request.content_length
    if length is not None and length <= SMALL_BYTES + FORM_SLACK:
        return await _upload_small(request, request.app[STATE])
    return await _upload_streamed(request, request.app[STATE])


async def _upload_small(request: web.Request, state: SandboxState) -> web.Response:
    """A small upload, read whole and split in memory (see form.py)."""
    form = split_form(await request.read(), request.headers.get("Content-Type", ""))
    image = None if form is None else form.get("image")
    if form is None or image is None or len(image) > SMALL_BYTES:
        return error(400, "http: no such file", "api_error_no_such_file")
    named = form.get("service_name")
    service = None if named is None else named.decode(errors="replace").strip()
    return _ordered(state, service, await _keep_small(image, state))


async def _upload_streamed(request: web.Request, state: SandboxState) -> web.Response:
    """A large (or unsized) upload, read part by part with aiohttp's multipart reader."""
    try:
        reader = await request.multipart()
    except (ValueError, KeyError, AssertionError):
        return error(400, "http: no such file", "api_error_no_such_file")
    service: str | None = None
    photo: tuple[StoredPhoto, str] | None = None
    saw_image = False
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "service_name":
            service = (await part.read_chunk(1024)).decode(errors="replace").strip()
            await part.release()
        elif part.name == "image" and not saw_image:
            saw_image = True
            photo = await _store_photo(part, state)
        else:
            await part.release()
    if not saw_image:
        return error(400, "http: no such file", "api_error_no_such_file")
    if photo is None:
        return error(400, "image larger than 50 MB", "api_error_image_too_large")
    return _ordered(state, service, photo)


def _ordered(
    state: SandboxState, service: str | None, photo: tuple[StoredPhoto, str]
) -> web.Response:
    """The upload's answer: a new order for the stored photo, if the service is known."""
    if service not in DOC_SERVICES:
        return error(400, f"invalid service_name: {service!r}", "api_error_invalid_service")
    order = state.add_order(photo[1], photo[0], now_iso())
    body: api.UploadResponse = {"order_id": order.id}
    return web.json_response(body)
