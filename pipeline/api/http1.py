"""A small HTTP/1.1 client for the API's JSON calls: the upload and the order every photo makes.

aiohttp's ``ClientSession`` spent ~3,600 Python bytecodes on each request (its request and
response objects, trace hooks, cookie, redirect and proxy layers, header multidicts): more than
half of what a photo cost the client (bench/RESULTS.md, "Client cost"). An API call needs little
of that: one request at a time on a kept-alive connection, a few headers out, a status, a few
headers and a framed body back. This is that, over an ``asyncio.Protocol``; results (large,
streamed, from other hosts) are still downloaded with aiohttp (``Transport._stream``).

What a caller can rely on, since the order POST's money rides on it:

- ``ConnectError`` only when nothing of the request was sent: the name did not resolve (or the
  resolver refused it), the TCP connection or the TLS handshake failed or timed out. A request
  that failed on a kept-alive connection is never a ``ConnectError``: its bytes may have left.
- ``NoAnswer`` for everything after the first byte was written: a closed connection, an answer
  that is not HTTP/1.x, a head over 64 KB, a body cut short, broken framing or compression.
- ``TimeoutError`` when no byte arrives for ``read`` seconds while an answer is awaited; the
  caller puts the whole call under its own deadline (``asyncio.timeout``).
- A connection goes back to the pool only after its answer was read to its framed end, with
  nothing after it, from an HTTP/1.1 server that did not ask to close; any other ends closed.
  A pooled connection the server has since closed (or sent anything on) is never reused.
- Request headers carrying CR, LF or NUL are refused before anything is sent (``ValueError``).
- Like aiohttp: ``Accept-Encoding: gzip, deflate`` (a gzip'd answer is inflated, capped at the
  caller's limit, so a bomb is cut, not inflated), HTTP/1.1, no redirect followed (the caller
  sees the 3xx), no cookie kept, no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import ipaddress
import operator
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from yarl import URL

__all__ = ["Answer", "ConnectError", "Http1", "NoAnswer"]

_ACCEPT_ANY = "Accept: */*\r\n"
# An idle connection is used again for this long at most (aiohttp's connector: 15 s): servers
# close theirs after a while (often 60-75 s), and a request sent on one the server is closing
# is lost on the way: for an order POST, an outcome to settle. Well under any server's time.
KEEP_IDLE_SECONDS = 15.0
_MAX_HEAD = 64 * 1024  # status line and headers; aiohttp's parser allows 8 KB a line
_LONG_HEAD = "the answer's head is over 64 KB"
_LONG_CHUNK_LINE = "a chunk's size line is too long"
_LONG_TRAILER = "the answer's trailer is too long"
_NONE = "the connection closed before an answer"
_CUT = "the connection closed before the answer's end"
_USER_AGENT = "aihd"  # set by the Transport: "aihd/<version> Python/<x.y>"


class ConnectError(Exception):
    """No connection was made: nothing of the request was sent."""

    def __init__(self, strerror: str) -> None:
        super().__init__(strerror)
        self.strerror = strerror


class NoAnswer(Exception):
    """The request may have been sent, and no usable answer came back."""


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: the bytes received and whether the peer is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the peer closed, or the connection was lost
        self.origin = ("", "", 0)  # (scheme, host, port): its pool
        self.idle_since = 0.0  # the loop's clock when it was last given back
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._end()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self._resume()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._resume()

    def _resume(self) -> None:
        self._paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _end(self) -> None:
        self.ended = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self, read: float, deadline: float) -> None:
        """Wait for more bytes (or the end): ``TimeoutError`` after ``read`` seconds, or at
        ``deadline`` (the loop's clock) if that comes first."""
        loop = self.loop
        at = loop.time() + read
        if deadline < at:
            if deadline <= loop.time():
                raise TimeoutError
            at = deadline
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(at, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def until(
        self, marker: bytes, most: int, read: float, deadline: float, too_long: str, cut: str
    ) -> int:
        """Where ``marker`` starts in the buffer, waiting for more bytes until it is there:
        ``NoAnswer(too_long)`` once more than ``most`` bytes come before it, ``NoAnswer(cut)``
        when the connection ends first."""
        buffer = self.buffer
        while (end := buffer.find(marker)) < 0:
            if len(buffer) > most:
                raise NoAnswer(too_long)
            if self.ended:
                raise NoAnswer(cut)
            await self.more(read, deadline)
        if end > most:
            raise NoAnswer(too_long)
        return end

    async def fill(self, size: int, read: float, deadline: float) -> None:
        """Wait until the buffer holds ``size`` bytes: ``NoAnswer`` if the connection ends
        first."""
        while len(self.buffer) < size:
            if self.ended:
                raise NoAnswer(_CUT)
            await self.more(read, deadline)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full."""
        if self._paused and not self.ended:
            self._drained = self.loop.create_future()
            await self._drained

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # a half-read answer is dropped, not waited for


class Answer:
    """An answer's status and headers (lower-case, values as sent: the leading space kept);
    its body is read with ``read``, and ``release`` (always, once) gives the connection back
    or closes it."""

    __slots__ = ("_conn", "_deadline", "_done", "_pool", "_read", "_reusable", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        conn: _Connection,
        pool: Callable[[_Connection | None], None],
        read: float,
        deadline: float,
        reusable: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._pool = pool
        self._read = read
        self._deadline = deadline
        self._reusable = reusable
        self._done = False  # the body was read to its framed end

    async def read(self, limit: int) -> bytes | None:
        """The whole body (inflated if gzip'd), or None once it is over ``limit`` bytes (no
        more than that is held). ``NoAnswer`` or ``TimeoutError`` when it does not come whole.
        """
        headers = self.headers
        conn = self._conn
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.strip() != "chunked":
                raise NoAnswer("the answer's Transfer-Encoding is not chunked")
            raw = await self._chunked(limit)
        elif (length := headers.get("content-length")) is not None:
            length = length.strip()
            if not (length.isascii() and length.isdigit()):
                raise NoAnswer("the answer's Content-Length is not a number")
            size = int(length)
            if size > limit:
                return None
            buffer = conn.buffer
            if len(buffer) < size:
                await conn.fill(size, self._read, self._deadline)
            raw = bytes(buffer[:size])
            del buffer[:size]
        else:  # no framing: the body ends when the server closes
            self._reusable = False
            raw = await self._until_closed(limit)
        if raw is None:
            return None
        self._done = True
        encoding = headers.get("content-encoding")
        if encoding is not None and (encoding := encoding.strip()) not in ("", "identity"):
            return _inflated(raw, encoding, limit)
        return raw

    async def _chunked(self, limit: int) -> bytes | None:
        conn = self._conn
        buffer = conn.buffer
        parts = bytearray()
        read, deadline = self._read, self._deadline
        while True:
            end = await conn.until(b"\r\n", 4096, read, deadline, _LONG_CHUNK_LINE, _CUT)
            size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
            if not size_text or size_text.translate(None, _HEX_DIGITS):  # not int()'s 0x, _, -
                raise NoAnswer("a chunk's size is not a hexadecimal number")
            size = int(size_text, 16)
            del buffer[: end + 2]
            if size == 0:
                break
            if len(parts) + size > limit:
                return None
            await conn.fill(size + 2, read, deadline)
            if buffer[size : size + 2] != b"\r\n":
                raise NoAnswer("a chunk does not end where its size says")
            parts += buffer[:size]
            del buffer[: size + 2]
        # Trailer fields, if any, up to the empty line.
        while True:
            end = await conn.until(b"\r\n", _MAX_HEAD, read, deadline, _LONG_TRAILER, _CUT)
            del buffer[: end + 2]
            if end == 0:
                return bytes(parts)

    async def _until_closed(self, limit: int) -> bytes | None:
        conn = self._conn
        while not conn.ended:
            if len(conn.buffer) > limit:
                return None
            await conn.more(self._read, self._deadline)
        if len(conn.buffer) > limit:
            return None
        return bytes(conn.buffer)

    def release(self) -> None:
        """Back to the pool if the answer was read to its end and nothing followed it."""
        conn = self._conn
        if self._done and self._reusable and not conn.ended and not conn.buffer:
            self._pool(conn)
        else:
            conn.close()
            self._pool(None)


def _inflated(raw: bytes, encoding: str, limit: int) -> bytes | None:
    """A gzip'd or deflated body, inflated to at most ``limit`` bytes (None past that)."""
    if encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        # "deflate" is meant to be zlib-wrapped, and some servers send it raw: aiohttp takes
        # both, so does this.
        raw_deflate = len(raw) < 2 or (raw[0] & 0x0F) != 8 or ((raw[0] << 8) | raw[1]) % 31
        inflater = zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)
    else:
        raise NoAnswer("the answer's Content-Encoding was not asked for")
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise NoAnswer(f"the answer's {encoding} body is broken") from None
    if len(body) > limit or inflater.unconsumed_tail:
        return None
    if not inflater.eof:
        raise NoAnswer(f"the answer's {encoding} body is cut short")
    return body


_FIELD = operator.methodcaller("split", ":", 1)
_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _two_lengths(fields: str) -> bool:
    """Whether the head's Content-Length lines disagree (a smuggling trick: refused)."""
    lengths = {
        line.partition(":")[2].strip()
        for line in fields.split("\r\n")
        if line.startswith("content-length:")
    }
    return len(lengths) > 1


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# aiohttp's resolver interface: addresses as aiohttp.abc.ResolveResult.
Resolve = Callable[[str, int, socket.AddressFamily], Awaitable[Sequence[Mapping[str, Any]]]]


class Http1:
    """Kept-alive HTTP/1.1 connections per origin, at most ``limit`` requests at once."""

    def __init__(
        self,
        resolve: Resolve,
        ssl_context: Callable[[], ssl.SSLContext],
        *,
        limit: int,
        user_agent: str = _USER_AGENT,
    ) -> None:
        self._resolve = resolve
        self._ssl_context = ssl_context
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        # What aiohttp's session sent by default; a caller's own Accept replaces ours.
        self._fixed = f"Accept-Encoding: gzip, deflate\r\nUser-Agent: {user_agent}\r\n"
        self._hosts: dict[tuple[str, str, int], str] = {}

    async def request(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | AsyncIterator[bytes] | None,
        *,
        length: int = -1,
        connect: float,
        read: float,
        deadline: float,
    ) -> Answer:
        """Send one request and read its status and headers.

        ``body``: bytes, or chunks adding up to ``length`` bytes (sent as they come, its
        Content-Length given ahead). The caller reads the body and releases the ``Answer``.
        Every wait, the body's read included, ends by ``deadline`` (the loop's clock).
        """
        block = "\r\n".join(map(": ".join, headers.items()))
        breaks = len(headers) - 1
        if headers and (
            block.count("\n") != breaks or block.count("\r") != breaks or "\x00" in block
        ):
            raise ValueError("a request header holds a line break or NUL")
        if headers:
            block += "\r\n"
        if isinstance(body, bytes):
            length = len(body)
        scheme = url.scheme
        host = url.raw_host or ""
        default = 443 if scheme == "https" else 80
        origin = (scheme, host, url.port or default)
        host_header = self._hosts.get(origin)
        if host_header is None:
            shown = f"[{host}]" if ":" in host else host
            explicit = url.explicit_port
            host_header = self._hosts.setdefault(
                origin, shown if explicit in (None, default) else f"{shown}:{explicit}"
            )
        head = (
            f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {host_header}\r\n"
            f"{'' if 'accept' in headers or 'Accept' in headers else _ACCEPT_ANY}"
            f"{self._fixed}{block}"
            + (f"Content-Length: {length}\r\n\r\n" if body is not None else "\r\n")
        ).encode()
        slots = self._slots
        if slots.locked():  # all in use: wait for one, not past the deadline
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        else:
            await slots.acquire()
        conn: _Connection | None = None
        try:
            conn = await self._connection(origin, connect, deadline)
            transport = conn.transport
            assert transport is not None
            if isinstance(body, bytes):
                transport.write(head + body)
            else:
                transport.write(head)
                if body is not None:
                    async with asyncio.timeout_at(deadline):
                        async for chunk in body:
                            if conn.ended:
                                break  # the server may have answered early (a 413): read it
                            transport.write(chunk)
                            await conn.drain()
            answer = await self._answer(conn, method, read, deadline)
        except BaseException:
            if conn is not None:
                conn.close()
            slots.release()
            raise
        return answer

    async def _answer(self, conn: _Connection, method: str, read: float, deadline: float) -> Answer:
        buffer = conn.buffer
        while True:
            end = await conn.until(b"\r\n\r\n", _MAX_HEAD, read, deadline, _LONG_HEAD, _NONE)
            # Lower-cased whole: the names, and the few values read here, are case-free.
            head = bytes(buffer[:end]).decode("latin-1").lower()
            del buffer[: end + 4]
            first, _, fields = head.partition("\r\n")
            code = first[9:12]
            if (
                first[:9] not in ("http/1.1 ", "http/1.0 ")
                or not (code.isascii() and code.isdigit())
                or first[12:13] not in ("", " ")
            ):
                raise NoAnswer("the answer is not HTTP/1.x")
            status = int(code)
            try:  # each "name: value" line split at its first colon, in C
                headers: dict[str, str] = dict(map(_FIELD, fields.split("\r\n"))) if fields else {}
            except ValueError:
                raise NoAnswer("the answer has a header line without a colon") from None
            if fields.count("content-length:") > 1 and _two_lengths(fields):
                raise NoAnswer("the answer has two different Content-Lengths")
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            break
        if status < 100 or status == 101:
            raise NoAnswer(f"the answer's status {status} is not one an API call can have")
        reusable = first[7] == "1" and "close" not in headers.get("connection", "")
        if method == "HEAD" or status in (204, 304):
            headers["content-length"] = "0"
            headers.pop("transfer-encoding", None)
        return Answer(status, headers, conn, self._give_back, read, deadline, reusable)

    def _give_back(self, conn: _Connection | None) -> None:
        if conn is not None:
            conn.idle_since = conn.loop.time()
            self._idle.setdefault(conn.origin, []).append(conn)
        self._slots.release()

    async def _connection(
        self, origin: tuple[str, str, int], connect: float, deadline: float
    ) -> _Connection:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if (
                conn.ended
                or conn.buffer
                or transport is None
                or transport.is_closing()
                or now - conn.idle_since > KEEP_IDLE_SECONDS
            ):
                # The server closed it (or spoke unasked) while it was idle; or it has been
                # idle so long that the server may be closing it just as a request goes out.
                conn.close()
                continue
            return conn
        left = deadline - now
        conn = await self._connect(origin, min(connect, left))
        conn.origin = origin
        return conn

    async def _connect(self, origin: tuple[str, str, int], seconds: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if scheme == "https" else None
        last = "no address"
        try:
            if seconds <= 0:
                raise TimeoutError
            async with asyncio.timeout(seconds):
                found: Sequence[Mapping[str, Any]] = (
                    [{"host": host, "port": port, "family": 0, "proto": 0, "flags": 0}]
                    if _is_ip(host)  # an address is not resolved (aiohttp's connector too)
                    else await self._resolve(host, port, socket.AF_UNSPEC)
                )
                for entry in found:
                    try:
                        conn: _Connection
                        _, conn = await loop.create_connection(
                            lambda: _Connection(loop),
                            host=str(entry["host"]),
                            port=int(entry["port"]),
                            family=int(entry["family"]),
                            proto=int(entry["proto"]),
                            flags=int(entry["flags"]),
                            ssl=context,
                            server_hostname=host if context is not None else None,
                        )
                    except OSError as exc:  # ssl.SSLError included: a refused certificate
                        last = _reason(exc)
                        continue
                    return conn
        except TimeoutError:
            raise ConnectError(f"no connection within {seconds:g} s") from None
        except OSError as exc:  # the resolver's: no such name, or only non-public addresses
            raise ConnectError(_reason(exc)) from exc
        raise ConnectError(last)

    def close(self) -> None:
        """Close every idle connection (those in use are closed by their callers)."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate refused: {exc.verify_message}"
    return exc.strerror or str(exc) or type(exc).__name__
