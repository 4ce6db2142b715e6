"""The HTTP boundary both API clients share (v1 and v3): kept-alive connections per run.

The API's JSON calls (a photo's upload and order among them) go through ``http1.Http1``, a
small HTTP/1.1 client that costs a fraction of aiohttp's ``ClientSession`` per call; result
downloads (streamed, from other hosts, redirects refused) through one aiohttp session.

Every transport error (http1's, aiohttp's) and every HTTP error status is mapped into
``pipeline.errors`` in one place, ``_transport_error`` and ``_status_error``. The call that
spends a credit (v1's order POST, v3's process POST) is special: once its bytes may have left,
a lost answer is ``OutcomeUnknown``, never a plain retryable error, because the API has no
idempotency key.

This is also the one boundary where the server's text enters aihd, and the server is not
trusted: the API key is redacted from every answer and error here (so no ledger row, summary,
export or log downstream can hold it), JSON answers are capped at 1 MB and results at 200 MB,
every call has a deadline for its whole answer, and results are fetched only from public
addresses or the API's own origin (``pipeline.addresses``).
"""

from __future__ import annotations

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_RESULT_BYTES",
    "REDACTED",
    "Digest",
    "Timeouts",
    "Transport",
    "image_disposition",
    "required_text",
    "shape_of",
]

import asyncio
import json
import mimetypes
import os
import re
import secrets
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, Self

from yarl import URL

from pipeline import __version__
from pipeline.addresses import PublicOnlyResolver, non_public_reason
from pipeline.api import v1_shapes as api
from pipeline.api.http1 import Answer, ConnectError, Http1, NoAnswer
from pipeline.errors import (
    ApiError,
    AuthRefused,
    ConnectFailed,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TransientError,
)
from pipeline.filenames import shown
from pipeline.files import open_regular

if TYPE_CHECKING:
    import aiohttp

_REJECTED = frozenset({400, 404, 405, 409, 413, 415, 422})
_CHUNK = 256 * 1024
_INLINE_BYTES = 1024 * 1024  # photos up to this size are read in one go
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # aiohttp would leave it as is
_USER_AGENT = f"aihd/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"
MAX_JSON_BYTES = 1024 * 1024  # an API answer is a few KB; more is a broken or hostile server
MAX_RESULT_BYTES = 200 * 1024 * 1024  # an enhanced photo of a 50 MB upload, with room to spare
REDACTED = "<redacted>"


class Digest(Protocol):
    """What ``upload`` feeds the bytes it sends to (a ``hashlib`` object)."""

    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per API call.

    ``read`` is a deadline for a call's whole answer, not for one socket read: a server that
    sends one byte every few seconds is cut off all the same. A call that moves many bytes
    (a 50 MB upload, a big result) gets ``read`` plus the time to move them at
    ``min_bytes_per_second`` (64 KiB/s, a slow uplink): a 50 MB upload may take 60 + 800 s,
    and a download's deadline moves on as its bytes arrive, so only a stalled peer is cut.
    """

    connect: float = 10.0
    read: float = 60.0
    min_bytes_per_second: float = 64 * 1024

    def whole_answer(self, size: int) -> float:
        """Seconds allowed for a call that moves ``size`` bytes (sent or received)."""
        return self.connect + self.read + size / self.min_bytes_per_second


@dataclass(frozen=True)
class _Secret:
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "<redacted>"


class Transport:
    """The session, its deadlines and guards; each version's client adds its calls.

    Use a client as ``async with Client(base_url, key) as client``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),
        max_connections: int = 64,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self._max_result_bytes = max_result_bytes
        self._key = _Secret(api_key)
        self._urls: dict[str, URL] = {}
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made at the first download
        self._http: Http1 | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self.base_url)!r})"

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._resolver = PublicOnlyResolver(self.base_url.host or "")
        # No proxy from the environment, no cookie, no redirect followed, as the session below.
        self._http = Http1(
            self._resolver.resolve,
            _verifying_context,
            limit=self._max_connections,
            user_agent=_USER_AGENT,
        )
        return self

    def _results_session(self) -> aiohttp.ClientSession:
        """The aiohttp session results are downloaded with, made (and aiohttp imported) at the
        first download: a run that only orders never loads aiohttp (~0.2 s of its start-up)."""
        if self._http is None:
            raise RuntimeError(f"{type(self).__name__} used outside `async with`")
        if self._session is None:
            aiohttp = _aiohttp()
            timeouts = self._timeouts
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                resolver=self._resolver,  # aiohttp's resolver interface, not its class
            )
            self._session = aiohttp.ClientSession(
                # A result's deadline is the download's own (it moves on with the bytes).
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
                ),
                connector=connector,
                raise_for_status=False,
                # The API authenticates by its key header: a cookie it (or a hostile server on
                # its address) sets is neither kept nor sent back, nor parsed on every answer.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- a photo, sent as multipart ------------------------------------------------------------

    async def _post_file(
        self,
        path: str,
        photo: str | Path,
        fields: Sequence[tuple[str, str]],
        file_field: str,
        *,
        sent: Digest | None = None,
    ) -> dict[str, Any]:
        """POST one photo as multipart ``file_field`` after the plain ``fields``; the answer.

        ``sent`` is fed the photo's bytes as they are sent, so the caller knows what was
        uploaded, whatever the file holds later.

        The multipart body is framed here rather than by aiohttp.FormData, which costs more
        CPU than the rest of a photo's work. A small photo is sent from one read; a larger one
        is streamed from disk in chunks with its exact Content-Length (no chunked encoding,
        which some upload proxies refuse), so a 50 MB photo never sits in memory.
        """
        # Blocking on purpose: the photo was just hashed, so its pages are cached; a thread hop
        # per small photo costs more CPU than these reads themselves. One open, never waiting
        # (a FIFO swapped in since the scan is refused, not waited on): its size, a small
        # photo's bytes and a large one's stream all come from the same file.
        with open_regular(photo, buffered=False) as file:
            size = os.fstat(file.fileno()).st_size
            inline = _read_whole(file, size) if size <= _INLINE_BYTES else None
            # A str path is taken as is (no Path built per photo); a name that is not UTF-8 is
            # sent as shown (\xNN): the API takes the name as a label only.
            name = shown(os.path.basename(photo))
            boundary = secrets.token_hex(16)
            disposition = _file_disposition(file_field, name)
            head = (
                "".join(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                    f"{value}\r\n"
                    for key, value in fields
                )
                + f"--{boundary}\r\n"
                f"Content-Disposition: {disposition}\r\n"
                f"Content-Type: {_content_type(name)}\r\n\r\n"
            ).encode()
            tail = f"\r\n--{boundary}--\r\n".encode()
            headers = {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                api.API_KEY_HEADER: self._key.value,
            }
            body: bytes | AsyncIterator[bytes]
            if inline is not None:
                if sent is not None:
                    sent.update(inline)
                body = head + inline + tail  # its length is what was read, even if it just grew
            else:
                body = _stream_file(file, size, head, tail, sent)
            return await self._json(
                "POST",
                path,
                data=body,
                length=len(head) + size + len(tail),
                headers=headers,
                deadline=self._timeouts.whole_answer(size),
            )

    async def download(self, url: str, dest: Path) -> int:
        """Stream a result image into ``dest`` (the caller renames it into place); returns bytes.

        Refused (``RequestRejected``, so the photo's result fails, never its order): a URL that
        is not http(s), a host that is not public (unless it is the API's own origin), a result
        over ``MAX_RESULT_BYTES``. The deadline is ``read`` plus the time its bytes take at
        ``min_bytes_per_second``, moved on as they arrive: a trickle is cut, a big file is not.
        """
        try:
            target = URL(url)
            scheme = target.scheme
        except ValueError:
            target, scheme = None, ""
        if target is None or scheme not in ("http", "https") or not target.host:
            raise self._refused_result(
                f"refusing to fetch result URL with scheme {scheme!r}: "
                "only http(s) URLs are fetched",
                "aihd_bad_result_url",
            )
        # The key goes only to the API's own host: result links may point at a CDN or a bucket
        # (unknown 7 in the API notes), which must never see it.
        same_origin = target.origin() == self.base_url.origin()
        if not same_origin:
            await self._refuse_non_public(target)
        import aiofiles  # only where a result is written

        timeouts = self._timeouts
        written = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout_at(started + timeouts.connect + timeouts.read) as deadline:
                async with (
                    self._stream(target, with_key=same_origin) as response,
                    aiofiles.open(dest, "wb") as out,
                ):
                    length = response.content_length
                    if length is not None and length > self._max_result_bytes:
                        raise self._too_big_result(target, length)
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        written += len(chunk)
                        if written > self._max_result_bytes:
                            raise self._too_big_result(target, written)
                        await out.write(chunk)
                        deadline.reschedule(
                            started
                            + timeouts.connect
                            + timeouts.read
                            + written / timeouts.min_bytes_per_second
                        )
        except TimeoutError as exc:
            raise TransientError(
                f"result: no whole answer from {self._redact(str(target.host))} in time "
                f"({written} bytes so far); will try again",
                method="GET",
                endpoint="result",
            ) from exc
        return written

    # -- what a hostile server may not make aihd do ---------------------------------------------

    def _redact(self, text: str) -> str:
        """The text with every exact occurrence of the API key replaced.

        Only the exact key: a fragment of it is left alone, because a fragment does not open
        the account, and hunting every substring would mangle innocent text (any short run of
        the key's letters). Texts are redacted before they are cut to length, so a cut never
        leaves a fragment of a key that was whole in the server's answer.
        """
        secret = self._key.value
        return text.replace(secret, REDACTED) if secret and secret in text else text

    def _redact_answer(self, raw: bytes, body: Any) -> Any:
        """The parsed answer with the key redacted from every string in it.

        The whole walk only when the raw bytes could hold the key: as itself, or spelled with
        JSON escapes (a backslash) or in UTF-16/32 (NUL bytes).
        """
        secret = self._key.value
        if not secret or (b"\\" not in raw and b"\x00" not in raw and secret.encode() not in raw):
            return body
        return _redact_tree(body, self._redact)

    def _refused_result(self, message: str, key: str = "") -> RequestRejected:
        """A result aihd refuses; without a ``key``, its ``reason`` (the ledger's error) is the
        whole message, which says why."""
        message = self._redact(message)
        return RequestRejected(message, error=message, key=key, method="GET", endpoint="result")

    def _too_big_result(self, target: URL, size: int) -> RequestRejected:
        return self._refused_result(
            f"refusing result from {target.host}: over {self._max_result_bytes:,} bytes "
            f"({size:,} or more)"
        )

    async def _refuse_non_public(self, target: URL) -> None:
        """Refuse a result host unless every address it resolves to is public."""
        host = target.host or ""
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, target.port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise TransientError(
                self._redact(f"result: cannot resolve {host} ({exc.strerror or exc})"),
                method="GET",
                endpoint="result",
            ) from exc
        for *_, sockaddr in found:
            address = str(sockaddr[0])
            if (reason := non_public_reason(address)) is not None:
                raise self._refused_result(
                    f"refusing to fetch result URL host {host} ({address}): it is {reason}; "
                    "results are fetched only from public addresses or the API's own origin"
                )

    # -- one boundary for every error ---------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | AsyncIterator[bytes] | None = None,
        length: int = -1,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        spends: bool = False,
        deadline: float = 0.0,
        endpoint: str = "",
        absolute: URL | None = None,
        lists: bool = False,
    ) -> dict[str, Any]:
        """One API call whose answer is a JSON object.

        Its whole answer is due within ``deadline`` seconds (``Timeouts.whole_answer(0)`` by
        default), counted from the call's start, a wait for a free connection included; and
        no wait for the answer's next bytes is longer than ``Timeouts.read``.
        """
        http = self._http
        if http is None:
            raise RuntimeError(f"{type(self).__name__} used outside `async with`")
        endpoint = endpoint or _endpoint_name(method, path)
        url = absolute or (
            self._urls.get(path) or self._urls.setdefault(path, self.base_url.with_path(path))
        )
        if params:
            url = url.extend_query(params)
        sent = dict(headers) if headers is not None else {api.API_KEY_HEADER: self._key.value}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        timeouts = self._timeouts
        answer: Answer | None = None
        try:
            answer = await http.request(
                method,
                url,
                sent,
                data,
                length=length,
                connect=timeouts.connect,
                read=timeouts.read,
                deadline=self._loop.time() + (deadline or timeouts.whole_answer(0)),
            )
            if answer.status >= 300:
                error_body = answer.read(64 * 1024)
                raise await _status_error(
                    answer.status, error_body, method, endpoint, spends, self._redact
                )
            raw = await answer.read(MAX_JSON_BYTES)
        except ApiError:
            raise
        except (ConnectError, NoAnswer, TimeoutError) as exc:
            raise _transport_error(exc, url, method, endpoint, spends, self._redact) from exc
        finally:
            if answer is not None:
                answer.release()
        status = answer.status
        if raw is None:
            cls = OutcomeUnknown if spends else TransientError
            raise cls(
                f"{endpoint}: the answer is over {MAX_JSON_BYTES // 1024} KB: not read",
                status=status,
                method=method,
                endpoint=endpoint,
            )
        try:
            body = self._redact_answer(raw, _parse_json(raw))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested a million deep
            cls = OutcomeUnknown if spends else TransientError
            raise cls(
                f"{endpoint}: the answer is not JSON",
                status=status,
                method=method,
                endpoint=endpoint,
            ) from exc
        if lists and isinstance(body, list):
            return {"data": body}  # a bare list answer (``lists``: the caller reads ``data``)
        if not isinstance(body, dict):
            cls = OutcomeUnknown if spends else TransientError
            raise cls(f"{endpoint}: expected a JSON object", method=method, endpoint=endpoint)
        return body

    @asynccontextmanager
    async def _stream(self, url: URL, *, with_key: bool) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a result as a stream, its errors mapped as ``_json`` maps them."""
        session = self._results_session()
        aiohttp = _aiohttp()
        headers = {api.API_KEY_HEADER: self._key.value} if with_key else {}
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status >= 300:
                    raise await _status_error(
                        response.status,
                        response.content.read(64 * 1024),
                        "GET",
                        "result",
                        spends=False,
                        redact=self._redact,
                    )
                yield response
        except ApiError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, url, "GET", "result", False, self._redact) from exc


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    """A parsed JSON value with ``redact`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    if isinstance(value, dict):
        return {redact(k): _redact_tree(v, redact) for k, v in value.items()}
    return value


def _transport_error(
    exc: aiohttp.ClientError | ConnectError | NoAnswer | TimeoutError,
    url: URL,
    method: str,
    endpoint: str,
    spends: bool,
    redact: Callable[[str], str],
) -> ApiError:
    """A request that got no HTTP answer, as the error the caller must act on."""
    if isinstance(exc, ConnectError) or _is_aiohttp(exc, "ClientConnectorError"):
        # Nothing was sent: the connection was never made. Safe to retry, even an order POST.
        return ConnectFailed(
            redact(
                f"{endpoint}: cannot connect to {url.host}:{url.port} "
                f"({getattr(exc, 'strerror', None)})"
            ),
            method=method,
            endpoint=endpoint,
        )
    if isinstance(exc, TimeoutError):
        what = "timed out"
    elif isinstance(exc, NoAnswer):
        what = redact(str(exc))  # http1's own words, never the server's: redacted all the same
    else:
        what = type(exc).__name__
    if spends:
        return OutcomeUnknown(
            f"{endpoint}: no answer ({what}); the order may have been charged",
            method=method,
            endpoint=endpoint,
        )
    return TransientError(f"{endpoint}: no answer ({what})", method=method, endpoint=endpoint)


_JSON = json.JSONDecoder()  # what json.loads uses, without its per-call layers


def _parse_json(raw: bytes) -> Any:
    """``json.loads(raw)``. An answer that opens with ``{`` or ``[`` followed by anything but
    a NUL is UTF-8 by json's own rule (no BOM, not UTF-16/32): decoded here, the way json.loads
    decodes it, without guessing the encoding on each of a photo's two answers."""
    if raw[:1] in (b"{", b"[") and raw[1:2] != b"\x00":
        return _JSON.decode(raw.decode("utf-8", "surrogatepass"))
    return json.loads(raw)


def _content_type(filename: str) -> str:
    """mimetypes' guess for the file's name. Only the last suffix decides, unless it is an
    encoding's (.gz: the suffix before it then decides), the name has a scheme (data:) or is
    all dots before it: those are asked whole, the rest once per suffix (each photo has a name
    of its own: a cache by name missed every time)."""
    head, dot, tail = filename.rpartition(".")
    suffix = dot + tail
    if (
        head.strip(".")
        and ":" not in filename
        and not any(s in mimetypes.suffix_map or s in mimetypes.encodings_map
                    for s in (suffix, suffix.lower()))
    ):  # fmt: skip
        return _suffix_type(suffix)
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


@lru_cache(maxsize=64)
def _suffix_type(suffix: str) -> str:
    return mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"


def _file_disposition(field_name: str, filename: str) -> str:
    """A file part's Content-Disposition; aiohttp's quoting only for names that need it."""
    if _PLAIN_NAME.fullmatch(filename):
        return f'form-data; name="{field_name}"; filename="{filename}"'
    _aiohttp()  # imported through deferred_ca.py, before its helpers module below
    from aiohttp.helpers import content_disposition_header

    return content_disposition_header("form-data", name=field_name, filename=filename)


def image_disposition(filename: str) -> str:
    """The v1 upload's image part's Content-Disposition."""
    return _file_disposition("image", filename)


async def _status_error(
    status: int,
    body: Awaitable[bytes | None],
    method: str,
    endpoint: str,
    spends: bool,
    redact: Callable[[str], str],
) -> ApiError:
    """The error an HTTP error status means; ``body`` reads (some of) the answer's body."""
    error, key = await _error_body(body, redact)
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
        # A 5xx (or 408) on the order POST leaves its outcome unknown, whatever its body: the
        # server may have charged before it failed. The API notes document no 5xx that means
        # nothing was done (v1 states no status codes for its submit errors; v3's one 500, a
        # bad tool slug, is seen in the MCP's catalog, not documented as chargeless), so none
        # is trusted as such: the order's details decide, over the whole settle time.
        if spends:
            return OutcomeUnknown(detail, **kw)
        return TransientError(detail, **kw)
    if status in _REJECTED or 400 <= status < 500:
        return RequestRejected(detail, **kw)
    # 3xx: redirects are never followed on API calls.
    cls = OutcomeUnknown if spends else RequestRejected
    return cls(f"{detail}: unexpected redirect, not followed", **kw)


async def _error_body(
    read: Awaitable[bytes | None], redact: Callable[[str], str]
) -> tuple[str, str]:
    """The API's ``error`` and ``key``, the API key redacted before they are cut to length:
    from the first 64 KB of the body, as far as it comes (a body that is cut, stalls or is
    not JSON gives none: the status still decides)."""
    try:
        raw = await read
        body = json.loads(raw) if raw is not None else None
    except (NoAnswer, TimeoutError, ValueError, RecursionError):
        return "", ""
    except Exception as exc:
        if _is_aiohttp(exc, "ClientError"):  # a download's error body that did not come
            return "", ""
        raise
    if not isinstance(body, dict):
        return "", ""
    return redact(str(body.get("error", "")))[:500], redact(str(body.get("key", "")))[:200]


def _endpoint_name(method: str, path: str) -> str:
    if path.startswith("/v1/order/") and path != api.UPLOAD_PATH:
        path = api.ORDER_PATH
    return f"{method} {path}"


def required_text(body: Mapping[str, Any], name: str, endpoint: str) -> str:
    """The answer's text field ``name``; a transient error naming it when it is missing."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise TransientError(f"{endpoint}: answer has no {name!r}", endpoint=endpoint)
    return value


@contextmanager
def shape_of(endpoint: str) -> Iterator[None]:
    """A hostile or broken answer of the wrong shape, as a transient error, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise TransientError(
            f"{endpoint}: the answer has an unexpected shape ({type(exc).__name__})",
            endpoint=endpoint,
        ) from exc


def _read_whole(file: BinaryIO, size: int) -> bytes:
    """What the file holds now: ``size`` bytes in one read, and a read that finds its end
    (or what it grew by since its size was read)."""
    whole = file.read(size + 1)
    while chunk := file.read(_CHUNK):
        whole += chunk
    return whole


async def _stream_file(
    file: BinaryIO, size: int, head: bytes, tail: bytes, sent: Digest | None
) -> AsyncIterator[bytes]:
    """The multipart body of a large photo, read from its open file chunk by chunk off the loop
    (the caller closes it): its first ``size`` bytes, the length announced ahead, even if the
    file grows meanwhile (``sent`` is fed exactly what is sent)."""
    yield head
    left = size
    while left > 0 and (chunk := await asyncio.to_thread(file.read, min(_CHUNK, left))):
        left -= len(chunk)
        if sent is not None:
            sent.update(chunk)
        yield chunk
    yield tail


@cache
def _verifying_context() -> ssl.SSLContext:
    """The API calls' TLS context, made at the first TLS connection (its certificates read from
    disk once, on the loop: ~0.1 s a process): aiohttp's verifying one, made the same way (the
    standard library's default, the system's CA certificates, hostname checked; ALPN
    http/1.1)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


def _aiohttp() -> ModuleType:
    """aiohttp, imported when first needed (a result download; a photo name that needs
    quoting), through deferred_ca.py: without its two loads of the CA certificates."""
    from pipeline.api.deferred_ca import aiohttp

    return aiohttp


def _is_aiohttp(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is aiohttp's ``name`` error (False while aiohttp was never loaded: no
    error of it can have been raised)."""
    module = sys.modules.get("aiohttp")
    return module is not None and isinstance(exc, getattr(module, name))
