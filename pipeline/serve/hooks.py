"""``POST /hooks/<secret>``: the account's webhooks, taken as hints and nothing more.

The vendor signs nothing (docs/api/AIHOMEDESIGN_API.md 2.6-2.7, AIHOMEDESIGN_V3.md 7), so a
payload is never trusted: the receiver answers at once (2xx within a second; the v3 dashboard
allows 10 s and retries a non-2xx) and hands only the ids it names to the service, which
re-reads the order (or upscale) with the account's own key. Ids the ledger did not create are
ignored (the webhook is account-wide: orders from the web app arrive too); a duplicate or a
replay finds nothing left to do. Refused, with nothing done: a wrong secret (404, as any
unknown path), a body over 64 KiB (413), bad JSON or an unknown shape (400). The secret is
compared in constant time and never logged (the app has no access log).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from pipeline.api import v3_shapes

__all__ = ["MAX_BODY_BYTES", "Hint", "Receiver", "parse"]

log = logging.getLogger("aihd")
MAX_BODY_BYTES = 64 * 1024
MAX_ID_LENGTH = 200  # an id longer than this is not one the API made
MAX_URL_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Hint:
    """What a webhook says happened, by id: an order (or v3 process) finished, or an upscale
    is ready. ``upscaled_src`` is the payload's link, used only as upscaling.py allows."""

    kind: Literal["order", "upscale"]
    order_id: str = ""
    process_id: str = ""
    generated_image_id: str = ""
    upscaled_src: str = ""
    user_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.generated_image_id if self.kind == "upscale" else self.order_id)


def _text(body: dict[str, Any], name: str, limit: int = MAX_ID_LENGTH) -> str | None:
    value = body.get(name)
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


def parse(body: object) -> Hint | None:
    """The hint in a v1 generated-image, v1 upscale or v3 ``process.completed`` webhook;
    None when the body is none of them."""
    if not isinstance(body, dict):
        return None
    user = _text(body, "user_id") or ""
    if "generated_image_id" in body:
        generated, src = (
            _text(body, "generated_image_id"),
            _text(body, "upscaled_image_src", MAX_URL_LENGTH),
        )
        if generated is None or src is None:
            return None
        return Hint("upscale", generated_image_id=generated, upscaled_src=src, user_id=user)
    if body.get("event") == v3_shapes.EVENT_PROCESS_COMPLETED:
        order, process = _text(body, "order_id"), _text(body, "process_id")
        if order is None or process is None:
            return None
        return Hint("order", order_id=order, process_id=process)
    if "event" in body:
        return None  # another v3 event: not one aihd acts on
    order = _text(body, "order_id")
    if order is None or not isinstance(body.get("image", body.get("images")), dict | list):
        return None
    return Hint("order", order_id=order, user_id=user)


class Receiver:
    """The route's handler: checks the door, answers at once, hands the hint on."""

    def __init__(self, secret: str, on_hint: Callable[[Hint], bool]) -> None:
        self._secret = secret.encode()
        self._on_hint = on_hint  # False: no room to take it now (answered 503: sent again)
        self.counts: Counter[str] = Counter()  # refused here; accepted/ignored by the service

    async def handle(self, request: web.Request) -> web.Response:
        given = request.match_info.get("secret", "").encode()
        if not secrets.compare_digest(given, self._secret):
            return self._refuse(404, "not found", "a wrong secret")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return self._refuse(413, "body over 64 KiB", "a body over 64 KiB")
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return self._refuse(413, "body over 64 KiB", "a body over 64 KiB")
        try:
            hint = parse(json.loads(raw))
        except (ValueError, RecursionError):
            return self._refuse(400, "not JSON", "a body that is not JSON")
        if hint is None:
            return self._refuse(400, "not a webhook aihd knows", "an unknown shape")
        if not self._on_hint(hint):
            self.counts["busy"] += 1
            return web.json_response({"error": "busy, send it again"}, status=503)
        return web.json_response({"ok": True}, status=202)

    def _refuse(self, status: int, answer: str, why: str) -> web.Response:
        self.counts["refused"] += 1
        log.info("webhook refused (%d): %s", status, why)  # info: a stranger must not fill the log
        return web.json_response({"error": answer}, status=status)
