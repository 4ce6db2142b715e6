"""POST /v3/order: photos in (multipart ``asset_file``, roles, ``project_id``), an order out.

Files are stored as v1 uploads are (uploads.py: once per distinct photo, 50 MB at most, large
ones streamed to disk). One ``primary_angle`` per order, at most one ``secondary_angle``; a file
without a role is the primary. Which role field name is accepted, whether ``project_id`` may be
left out and whether the window counts orders are readings (v3_readings.py).
"""

from __future__ import annotations

__all__ = ["MAGIC", "RAW_SUFFIXES", "ROLE_FIELDS", "WRONG_ROLE", "create_order"]

import asyncio
from pathlib import Path

from aiohttp import BodyPartReader, web

from .replies import STATE, error, now_iso
from .state import RATE_LIMIT_MESSAGE, SandboxState, StoredPhoto
from .uploads import _store_photo
from .v3_replies import ok
from .v3_state import ROLES, Asset, Project, new_id

ROLE_FIELDS = ("asset_role", "asset_roles")
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".raw"})
# JPEG, PNG, WEBP (RIFF....WEBP) and TIFF, which most RAW formats are underneath.
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*")
WRONG_ROLE = "wrong asset role"


def _is_image(head: bytes, filename: str) -> bool:
    if head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return True
    return Path(filename).suffix.lower() in RAW_SUFFIXES


def _head(photo: StoredPhoto) -> bytes:
    if isinstance(photo, bytes):
        return photo[:16]
    with photo.open("rb") as stored:
        return stored.read(16)


class _Form:
    """The fields of one order upload, as read so far."""

    def __init__(self) -> None:
        self.project_id: str | None = None
        self.files: list[tuple[str, tuple[StoredPhoto, str] | None]] = []  # name, photo|too big
        self.roles: list[str] = []
        self.wrong_role_field = False


async def _read_form(request: web.Request, state: SandboxState) -> _Form | None:
    """The upload's fields, or None if the body is not a multipart form."""
    try:
        reader = await request.multipart()
    except (ValueError, KeyError, AssertionError):
        return None
    role_field = state.v3.readings.role_field
    form = _Form()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "asset_file":
            form.files.append((part.filename or "", await _store_photo(part, state)))
        elif part.name in ("project_id", *ROLE_FIELDS):
            text = (await part.read_chunk(1024)).decode(errors="replace").strip()
            await part.release()
            if part.name == "project_id":
                form.project_id = text
            elif part.name == role_field:
                form.roles.append(text)
            else:
                form.wrong_role_field = True
        else:
            await part.release()
    return form


def _assets(form: _Form, heads: list[bytes]) -> tuple[Asset, ...] | str:
    """The order's assets, or why the upload is refused (a 400)."""
    if not form.files:
        return "http: no such file"
    if form.wrong_role_field or len(form.roles) > len(form.files):
        return WRONG_ROLE
    assets: list[Asset] = []
    for index, ((filename, photo), head) in enumerate(zip(form.files, heads, strict=True)):
        if photo is None:
            return f"{filename or 'asset_file'}: image larger than 50 MB"
        if not _is_image(head, filename):
            return f"{filename or 'asset_file'}: not an image; send JPG, PNG, WEBP or RAW"
        role = form.roles[index] if index < len(form.roles) else "primary_angle"
        if role not in ROLES:
            return WRONG_ROLE
        assets.append(Asset(new_id(), role, photo[1], photo[0]))
    roles = [asset.role for asset in assets]
    if roles.count("primary_angle") != 1:
        return "an order takes exactly one primary_angle asset"
    if roles.count("secondary_angle") > 1:
        return "an order takes at most one secondary_angle asset"
    return tuple(assets)


async def create_order(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await _read_form(request, state)
    if form is None:
        return error(400, "http: no such file", "api_error_no_such_file")
    heads = await asyncio.to_thread(
        lambda: [b"" if photo is None else _head(photo[0]) for _, photo in form.files]
    )
    assets = _assets(form, heads)
    if isinstance(assets, str):
        key = "api_error_wrong_asset_role" if assets == WRONG_ROLE else "api_error_invalid_asset"
        return error(400, assets, key)
    store, readings = state.v3, state.v3.readings
    project: Project | None
    if form.project_id:
        project = store.project(form.project_id)
        if project is None:
            return error(404, "project not found", "api_error_project_not_found")
    elif readings.project_id == "required":
        return error(400, "project_id is required", "api_error_invalid_request")
    else:
        project = store.default_project(now_iso())
    if readings.window_counts == "orders":
        in_flight = store.in_flight_now() if readings.window_in_flight else 0
        if not state.admit(in_flight):
            return error(429, RATE_LIMIT_MESSAGE)
    order = store.add_order(project, assets, now_iso())
    state.count("uploads")
    state.count("v3_orders")
    body = {"order_id": order.id, "assets": [{"id": asset.id} for asset in assets]}
    return ok(request, body, status=201)
