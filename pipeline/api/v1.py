"""The client of the AI HomeDesign v1 API: upload, submit, the order's details, the catalog.

The HTTP boundary (deadlines, key redaction, size caps, error mapping) is ``transport``'s,
shared with the v3 client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pipeline.api import v1_shapes as api
from pipeline.api.records import GeneratedImage, OrderDetails, OrderSpec, SubmittedOrder
from pipeline.api.transport import (
    MAX_RESULT_BYTES,
    REDACTED,
    Digest,
    Timeouts,
    Transport,
    image_disposition,
    required_text,
    shape_of,
)
from pipeline.errors import TransientError

__all__ = [
    "MAX_RESULT_BYTES",
    "REDACTED",
    "ApiClient",
    "Digest",
    "GeneratedImage",
    "Item",
    "OrderDetails",
    "ResultSource",
    "Space",
    "SubmittedOrder",
    "Timeouts",
    "Widget",
    "image_disposition",
]


@dataclass(frozen=True, slots=True)
class ResultSource:
    """Where the API itself says one generated image is: its result, the account's user, and
    an upscaled link when the order's details carry one (docs are silent: handled if so)."""

    src: str
    user_id: str
    sequence: int  # its place among the order's results, from 1 (the photo's _2, _3 files)
    upscaled_src: str = ""


@dataclass(frozen=True, slots=True)
class Space:
    """A space of the v1 catalog (indoor, outdoor, ...): its id, name and title."""

    id: str
    name: str
    title: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class Item:
    """One choice of a widget: its id and title."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Widget:
    """A group of items of a space (an enhancement's options)."""

    id: str
    title: str
    is_optional: bool
    items: tuple[Item, ...]


class ApiClient(Transport):
    """Calls of the v1 API. Use as ``async with ApiClient(base_url, key) as client``."""

    version = "v1"

    async def upload(
        self, photo: str | Path, service_name: str = api.SERVICE, *, sent: Digest | None = None
    ) -> str:
        """Upload one photo; returns the new order's id. ``sent`` is fed the photo's bytes as
        they are sent, so the caller knows what was uploaded, whatever the file holds later."""
        answer = await self._post_file(
            api.UPLOAD_PATH, photo, (("service_name", service_name),), "image", sent=sent
        )
        return required_text(answer, "order_id", api.UPLOAD_PATH)

    async def spaces(self, service_name: str = api.SERVICE) -> list[Space]:
        params = {"service_name": service_name}
        body = await self._json("GET", api.SPACES_PATH, params=params)
        with shape_of(api.SPACES_PATH):
            return [
                Space(
                    id=str(s["id"]),
                    name=str(s["name"]),
                    title=str(s.get("title", "")),
                    is_active=bool(s.get("is_active", True)),
                )
                for s in _data_list(body, api.SPACES_PATH)
            ]

    async def widgets(self, space_name: str, service_name: str = api.SERVICE) -> list[Widget]:
        params = {"space_name": space_name, "service_name": service_name}
        body = await self._json("GET", api.ITEMS_PATH, params=params)
        with shape_of(api.ITEMS_PATH):
            return [
                Widget(
                    id=str(w["id"]),
                    title=str(w.get("title", "")),
                    is_optional=bool(w.get("is_optional", True)),
                    items=tuple(
                        Item(id=str(i["id"]), title=str(i.get("title", ""))) for i in w["items"]
                    ),
                )
                for w in _data_list(body, api.ITEMS_PATH)
            ]

    async def submit(
        self, order_id: str, space_name: str, selected: list[api.SelectedWidget]
    ) -> SubmittedOrder:
        """Submit an uploaded order. This spends a credit.

        A lost answer raises OutcomeUnknown: the caller must ask ``order()`` before trying again.
        """
        payload: api.SubmitRequest = {
            "order_id": order_id,
            "space_name": space_name,
            "selected_widgets": selected,
        }
        body = await self._json("POST", api.SUBMIT_PATH, json_body=payload, spends=True)
        eta = body.get("eta")
        return SubmittedOrder(
            order_id=str(body.get("order_id", order_id)),
            image_id=str(body.get("image_id", "")),
            eta=eta if isinstance(eta, int) and not isinstance(eta, bool) else None,
        )

    async def order(self, order_id: str, service: str = api.SERVICE) -> OrderDetails:
        del service  # one service in v1
        path = api.ORDER_PATH.format(order_id=order_id)
        body = await self._json("GET", path)
        images = body.get("generated_images") or []
        with shape_of(api.ORDER_PATH):
            return OrderDetails(
                order_id=str(body.get("id", order_id)),
                status=str(body.get("status", "")),
                generated_images=tuple(
                    GeneratedImage(
                        id=str(g.get("id", "")),
                        src=str(g.get("src", "")),
                        status=str(g.get("status")),
                    )
                    for g in images
                    if isinstance(g, dict) and g.get("src")
                ),
            )

    async def upscale(self, generated_image_id: str) -> None:
        """Ask for an upscale of one generated image (2.7); it may cost, so a lost answer is
        ``OutcomeUnknown``. The result comes by webhook only."""
        path = api.UPSCALE_PATH.format(generated_image_id=generated_image_id)
        await self._json(
            "POST", path, spends=True, endpoint="POST /v1/order/image/{id}/download/upscale"
        )

    async def result_source(self, order_id: str, generated_image_id: str) -> ResultSource | None:
        """The order's own word on one of its generated images; None when it has no such one."""
        path = api.ORDER_PATH.format(order_id=order_id)
        body = await self._json("GET", path)
        user = body.get("user_id")
        images = [g for g in body.get("generated_images") or [] if isinstance(g, dict)]
        for sequence, image in enumerate(images, 1):
            if image.get("id") == generated_image_id:
                upscaled = image.get("upscaled_image_src")
                return ResultSource(
                    src=str(image.get("src") or ""),
                    user_id=user if isinstance(user, str) else "",
                    sequence=sequence,
                    upscaled_src=upscaled if isinstance(upscaled, str) else "",
                )
        return None

    # -- the PhotoApi interface (pipeline.api.interface) ----------------------------------------

    async def send_photo(
        self, photo: str | Path, spec: OrderSpec, *, sent: Digest | None = None
    ) -> str:
        return await self.upload(photo, spec.service, sent=sent)

    async def spend(
        self,
        order_id: str,
        spec: OrderSpec,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> SubmittedOrder:
        if before_send is not None:
            await before_send()  # the intent: the order POST leaves right after it
        return await self.submit(order_id, spec.space_name, list(spec.selected_widgets))

    async def fetch_result(self, image: GeneratedImage, dest: Path, service: str) -> int:
        del service
        return await self.download(image.src, dest)

    def paces_uploads(self, service: str) -> bool:
        """v1 uploads are free and outside the order window: they may run ahead of it."""
        del service
        return False


def _data_list(body: Any, endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"{endpoint}: answer has no 'data' list", endpoint=endpoint)
    return [cast(dict[str, Any], d) for d in data if isinstance(d, dict)]
