"""The async client of the AI HomeDesign v1 API: one aiohttp session per run.

Every aiohttp error and every HTTP error status is mapped into ``pipeline.errors`` in one place,
``_transport_error`` and ``_status_error``. The order POST is special: once its bytes may have
left, a lost answer is ``OutcomeUnknown``, never a plain retryable error, because the API has no
idempotency key.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, cast

import aiofiles
import aiohttp
from aiohttp.helpers import content_disposition_header
from yarl import URL

from pipeline import api
from pipeline.errors import (
    ApiError,
    AuthRefused,
    ConnectFailed,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TransientError,
)

_REJECTED = frozenset({400, 404, 405, 409, 413, 415, 422})
_CHUNK = 256 * 1024
_INLINE_BYTES = 1024 * 1024  # photos up to this size are read in one go
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # aiohttp would leave it as is


class Digest(Protocol):
    """What ``upload`` feeds the bytes it sends to (a ``hashlib`` object)."""

    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per API call; ``read`` is per socket read, so big uploads are not cut."""

    connect: float = 10.0
    read: float = 60.0
    total: float | None = None


@dataclass(frozen=True, slots=True)
class Space:
    id: str
    name: str
    title: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Widget:
    id: str
    title: str
    is_optional: bool
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class SubmittedOrder:
    order_id: str
    image_id: str
    eta: int | None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    id: str
    src: str
    status: str


@dataclass(frozen=True, slots=True)
class OrderDetails:
    order_id: str
    status: str
    generated_images: tuple[GeneratedImage, ...]

    @property
    def never_submitted(self) -> bool:
        """True only when the API shows the order untouched: safe to submit it."""
        return self.status == api.STATUS_IDLE and not self.generated_images


@dataclass(frozen=True)
class _Secret:
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "<redacted>"


class ApiClient:
    """Calls of the v1 API. Use as ``async with ApiClient(base_url, key) as client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 64,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self._key = _Secret(api_key)
        self._urls: dict[str, URL] = {}
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ApiClient(base_url={str(self.base_url)!r})"

    async def __aenter__(self) -> Self:
        timeout = aiohttp.ClientTimeout(
            total=self._timeouts.total,
            sock_connect=self._timeouts.connect,
            sock_read=self._timeouts.read,
        )
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=connector, raise_for_status=False
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the API's calls ----------------------------------------------------------------------

    async def upload(
        self, photo: str | Path, service_name: str = api.SERVICE, *, sent: Digest | None = None
    ) -> str:
        """Upload one photo; returns the new order's id. ``sent`` is fed the photo's bytes as
        they are sent, so the caller knows what was uploaded, whatever the file holds later.

        The multipart body is framed here rather than by aiohttp.FormData, which costs more
        CPU than the rest of a photo's work. A small photo is sent from one read; a larger one
        is streamed from disk in chunks with its exact Content-Length (no chunked encoding,
        which some upload proxies refuse), so a 50 MB photo never sits in memory.
        """
        # Blocking on purpose: the photo was just hashed, so its pages are cached; a thread hop
        # per small photo costs more CPU than these reads themselves. One open: its size, and
        # a small photo's bytes, come from the same file.
        with open(photo, "rb") as file:  # noqa: ASYNC230
            size = os.fstat(file.fileno()).st_size
            inline = file.read() if size <= _INLINE_BYTES else None
        name = os.path.basename(photo)  # a str path is taken as is: no Path built per photo
        boundary = secrets.token_hex(16)
        disposition = _image_disposition(name)
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="service_name"\r\n\r\n'
            f"{service_name}\r\n"
            f"--{boundary}\r\n"
            f"Content-Disposition: {disposition}\r\n"
            f"Content-Type: {_content_type(name)}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
            api.API_KEY_HEADER: self._key.value,
        }
        body: bytes | AsyncIterator[bytes]
        if inline is not None:
            if sent is not None:
                sent.update(inline)
            body = head + inline + tail
            headers["Content-Length"] = str(len(body))  # what was read, even if it just grew
        else:
            body = _stream_file(photo, head, tail, sent)
        answer = await self._json("POST", api.UPLOAD_PATH, data=body, headers=headers)
        return _field(answer, "order_id", api.UPLOAD_PATH)

    async def spaces(self, service_name: str = api.SERVICE) -> list[Space]:
        params = {"service_name": service_name}
        body = await self._json("GET", api.SPACES_PATH, params=params)
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

    async def order(self, order_id: str) -> OrderDetails:
        path = api.ORDER_PATH.format(order_id=order_id)
        body = await self._json("GET", path)
        images = body.get("generated_images") or []
        return OrderDetails(
            order_id=str(body.get("id", order_id)),
            status=str(body.get("status", "")),
            generated_images=tuple(
                GeneratedImage(
                    id=str(g.get("id", "")), src=str(g.get("src", "")), status=str(g.get("status"))
                )
                for g in images
                if isinstance(g, dict) and g.get("src")
            ),
        )

    async def download(self, url: str, dest: Path) -> int:
        """Stream a result image into ``dest`` (the caller renames it into place); returns bytes."""
        target = URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise RequestRejected(
                f"refusing to fetch result URL with scheme {target.scheme!r}: only http(s)",
                error="bad result url",
                key="aihd_bad_result_url",
                method="GET",
                endpoint="result",
            )
        # The key goes only to the API's own host: result links may point at a CDN or a bucket
        # (unknown 7 in the API notes), which must never see it.
        same_origin = target.origin() == self.base_url.origin()
        written = 0
        async with (
            self._stream(target, with_key=same_origin) as response,
            aiofiles.open(dest, "wb") as out,
        ):
            async for chunk in response.content.iter_chunked(_CHUNK):
                await out.write(chunk)
                written += len(chunk)
        return written

    # -- one boundary for every error ---------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        spends: bool = False,
    ) -> dict[str, Any]:
        """One API call whose answer is a JSON object.

        Not a context manager like ``_stream``: this runs twice per photo, and those layers
        cost more CPU than the rest of the call's own code.
        """
        if self._session is None:
            raise RuntimeError("ApiClient used outside `async with`")
        endpoint = _endpoint_name(method, path)
        url = self._urls.get(path) or self._urls.setdefault(path, self.base_url.with_path(path))
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=data,
                json=json_body,
                headers=headers or {api.API_KEY_HEADER: self._key.value},
                allow_redirects=False,
            ) as response:
                if response.status >= 300:
                    raise await _status_error(response, method, endpoint, spends)
                raw = await response.read()
        except ApiError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, url, method, endpoint, spends) from exc
        try:
            body = json.loads(raw)
        except ValueError as exc:
            cls = OutcomeUnknown if spends else TransientError
            raise cls(
                f"{endpoint}: the answer is not JSON",
                status=response.status,
                method=method,
                endpoint=endpoint,
            ) from exc
        if not isinstance(body, dict):
            cls = OutcomeUnknown if spends else TransientError
            raise cls(f"{endpoint}: expected a JSON object", method=method, endpoint=endpoint)
        return body

    @asynccontextmanager
    async def _stream(self, url: URL, *, with_key: bool) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a result as a stream, its errors mapped as ``_json`` maps them."""
        if self._session is None:
            raise RuntimeError("ApiClient used outside `async with`")
        headers = {api.API_KEY_HEADER: self._key.value} if with_key else {}
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status >= 300:
                    raise await _status_error(response, "GET", "result", spends=False)
                yield response
        except ApiError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, url, "GET", "result", spends=False) from exc


def _transport_error(
    exc: aiohttp.ClientError | TimeoutError, url: URL, method: str, endpoint: str, spends: bool
) -> ApiError:
    """A request that got no HTTP answer, as the error the caller must act on."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Nothing was sent: the connection was never made. Safe to retry, even an order POST.
        return ConnectFailed(
            f"{endpoint}: cannot connect to {url.host}:{url.port} ({exc.strerror})",
            method=method,
            endpoint=endpoint,
        )
    what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    if spends:
        return OutcomeUnknown(
            f"{endpoint}: no answer ({what}); the order may have been charged",
            method=method,
            endpoint=endpoint,
        )
    return TransientError(f"{endpoint}: no answer ({what})", method=method, endpoint=endpoint)


@lru_cache(maxsize=64)
def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _image_disposition(filename: str) -> str:
    """The image part's Content-Disposition; aiohttp's quoting only for names that need it."""
    if _PLAIN_NAME.fullmatch(filename):
        return f'form-data; name="image"; filename="{filename}"'
    return content_disposition_header("form-data", name="image", filename=filename)


async def _status_error(
    response: aiohttp.ClientResponse, method: str, endpoint: str, spends: bool
) -> ApiError:
    status = response.status
    error, key = await _error_body(response)
    detail = (
        f"{endpoint}: HTTP {status}"
        + (f": {error}" if error else "")
        + (f" ({key})" if key else "")
    )
    kw: dict[str, Any] = {
        "status": status,
        "error": error,
        "key": key,
        "method": method,
        "endpoint": endpoint,
    }
    if status in (401, 403):
        hint = (
            "the API key is missing or wrong: check AIHD_API_KEY"
            if status == 401
            else "the key's plan does not include this service: contact AI HomeDesign support"
        )
        return AuthRefused(f"{detail}; {hint}", **kw)
    if status == 429:
        return RateLimited(detail, **kw)
    if status >= 500 or status == 408:
        # A 5xx on the order POST leaves its outcome unknown: the server may have charged first.
        cls: type[ApiError] = OutcomeUnknown if spends else TransientError
        return cls(detail, **kw)
    if status in _REJECTED or 400 <= status < 500:
        return RequestRejected(detail, **kw)
    # 3xx: redirects are never followed on API calls.
    cls = OutcomeUnknown if spends else RequestRejected
    return cls(f"{detail}: unexpected redirect, not followed", **kw)


async def _error_body(response: aiohttp.ClientResponse) -> tuple[str, str]:
    try:
        raw = await response.content.read(64 * 1024)
        body = json.loads(raw)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error", ""))[:500], str(body.get("key", ""))[:200]


def _endpoint_name(method: str, path: str) -> str:
    if path.startswith("/v1/order/") and path != api.UPLOAD_PATH:
        path = api.ORDER_PATH
    return f"{method} {path}"


def _field(body: Mapping[str, Any], name: str, endpoint: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"{endpoint}: answer has no {name!r}", endpoint=endpoint)
    return value


def _data_list(body: Mapping[str, Any], endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list):
        raise TransientError(f"{endpoint}: answer has no 'data' list", endpoint=endpoint)
    return [cast(dict[str, Any], d) for d in data if isinstance(d, dict)]


async def _stream_file(
    photo: str | Path, head: bytes, tail: bytes, sent: Digest | None
) -> AsyncIterator[bytes]:
    """The multipart body of a large photo, read from disk chunk by chunk off the loop."""
    yield head
    async with aiofiles.open(photo, "rb") as stream:
        while chunk := await stream.read(_CHUNK):
            if sent is not None:
                sent.update(chunk)
            yield chunk
    yield tail
