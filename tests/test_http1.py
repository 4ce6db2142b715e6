"""The API's small HTTP/1.1 client (pipeline/api/http1.py) against a real loopback server that
answers with exactly the bytes a test gives it: framing, pooling, and the line between "nothing
was sent" (ConnectError) and "no usable answer" (NoAnswer) that the order POST's money rides on.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from yarl import URL

from pipeline.api import http1
from pipeline.api.http1 import ConnectError, Http1, NoAnswer


@dataclass
class Scripted:
    """A loopback server: each request gets the next of ``answers`` (bytes, sent as is); a
    ``None`` answer closes the connection without a word. ``close_after`` closes the
    connection after each answer."""

    answers: list[bytes | None]
    close_after: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()


@asynccontextmanager
async def serving(script: Scripted) -> AsyncIterator[URL]:
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield URL(f"http://127.0.0.1:{port}/v1/thing")
    finally:
        server.close()


async def _refuse(host: str, port: int, family: socket.AddressFamily) -> list[dict[str, Any]]:
    raise OSError(f"{host} is not resolved in these tests")


def _client(limit: int = 4) -> Http1:
    return Http1(_refuse, ssl.create_default_context, limit=limit, user_agent="aihd-test")


async def _get(
    http: Http1, url: URL, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes | None]:
    loop = asyncio.get_running_loop()
    answer = await http.request(
        "POST" if body is not None else "GET",
        url,
        headers or {},
        body,
        connect=2.0,
        read=2.0,
        deadline=loop.time() + 5.0,
    )
    try:
        return answer.status, await answer.read(1024)
    finally:
        answer.release()


def _run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def _exchange(script: Scripted, *requests: dict[str, Any]) -> list[tuple[int, bytes | None]]:
    """Each request (``_get``'s keywords) sent in turn on one client to ``script``'s server:
    what each was answered."""

    async def scenario() -> list[tuple[int, bytes | None]]:
        async with serving(script) as url:
            http = _client()
            try:
                return [await _get(http, url, **request) for request in requests]
            finally:
                http.close()

    result: list[tuple[int, bytes | None]] = _run(scenario)
    return result


def _ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


def test_a_kept_alive_connection_carries_the_next_request() -> None:
    script = Scripted([_ok(b'{"a":1}'), _ok(b'{"b":2}')])

    assert _exchange(script, {}, {}) == [(200, b'{"a":1}'), (200, b'{"b":2}')]
    assert script.connections == 1
    first = script.requests[0].decode()
    assert first.startswith("GET /v1/thing HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "Accept-Encoding: gzip, deflate\r\n" in first
    assert "Accept: */*\r\n" in first


def test_a_callers_accept_replaces_the_default_one() -> None:
    script = Scripted([_ok(b"[]")])

    assert _exchange(script, {"headers": {"accept": "application/json"}}) == [(200, b"[]")]
    sent = script.requests[0].decode().lower()
    assert sent.count("accept:") == 1
    assert "accept: application/json\r\n" in sent


def test_an_answer_that_asks_to_close_is_not_pooled() -> None:
    script = Scripted([_ok(b"1", "Connection: close"), _ok(b"2")])

    assert _exchange(script, {}, {}) == [(200, b"1"), (200, b"2")]
    assert script.connections == 2


def test_a_pooled_connection_the_server_closed_is_not_used_again() -> None:
    """The server closes its kept-alive connection after the answer (an idle timeout): the
    next request, an order POST perhaps, goes on a new connection, not into the closed one
    (where its bytes would be lost and its outcome unknown)."""
    script = Scripted([_ok(b"1"), _ok(b"2")], close_after=True)

    async def scenario() -> list[tuple[int, bytes | None]]:
        async with serving(script) as url:
            http = _client()
            try:
                first = await _get(http, url)
                await script.closed.wait()
                # The client's side sees the end: the loop has read the server's FIN.
                idle = [conn for conns in http._idle.values() for conn in conns]
                for _ in range(500):
                    if all(conn.ended for conn in idle):
                        break
                    await asyncio.sleep(0.01)
                assert idle and all(conn.ended for conn in idle)
                return [first, await _get(http, url, body=b"{}")]
            finally:
                http.close()

    assert _run(scenario) == [(200, b"1"), (200, b"2")]
    assert script.connections == 2


def test_a_connection_idle_too_long_is_not_used_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past KEEP_IDLE_SECONDS idle (here: any time at all) a connection is closed, not reused:
    the server may be closing it as the next request leaves."""
    monkeypatch.setattr(http1, "KEEP_IDLE_SECONDS", -1.0)
    script = Scripted([_ok(b"1"), _ok(b"2")])

    assert _exchange(script, {}, {}) == [(200, b"1"), (200, b"2")]
    assert script.connections == 2


def test_a_connection_closed_without_an_answer_is_no_answer_not_a_connect_error() -> None:
    """The request went out; the server hung up: its outcome is unknown (NoAnswer), never
    'nothing was sent' (ConnectError), which would let an order POST be sent again."""
    script = Scripted([None])

    with pytest.raises(NoAnswer):
        _exchange(script, {"body": b'{"order": 1}'})
    assert script.requests and script.requests[0].endswith(b'{"order": 1}')


def test_a_refused_connection_is_a_connect_error() -> None:
    async def scenario() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        http = _client()
        await _get(http, URL(f"http://127.0.0.1:{port}/"))

    with pytest.raises(ConnectError):
        _run(scenario)


def test_a_name_the_resolver_refuses_is_a_connect_error() -> None:
    async def scenario() -> None:
        await _get(_client(), URL("http://api.invalid/v1/thing"))

    with pytest.raises(ConnectError, match="not resolved"):
        _run(scenario)


@pytest.mark.parametrize("value", ["k\r\nX-Evil: 1", "k\nx", "k\x00"])
def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(value: str) -> None:
    script = Scripted([_ok(b"1")])

    with pytest.raises(ValueError, match="line break or NUL"):
        _exchange(script, {"headers": {"x-api-key": value}})
    assert script.connections == 0


def _chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (_chunked(b'{"a":', b"1}"), b'{"a":1}'),
        (_chunked(b"x", trailer=b"X-Sum: 1\r\n"), b"x"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after"), b"after"),
        (_ok(gzip.compress(b'{"z":1}'), "Content-Encoding: gzip"), b'{"z":1}'),
        (_ok(zlib.compress(b"zl"), "Content-Encoding: deflate"), b"zl"),
        (_ok(zlib.compress(b"raw")[2:-4], "Content-Encoding: deflate"), b"raw"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nCONTENT-LENGTH: 2\r\n\r\nok", b"ok"),
        (_ok(b"x" * 2000), None),  # over the 1,024-byte limit: not read
        (_ok(gzip.compress(b" " * 100_000), "Content-Encoding: gzip"), None),  # a small bomb
    ],
    ids=[
        "chunked",
        "trailer",
        "100-continue",
        "gzip",
        "deflate",
        "raw-deflate",
        "http-1.0",
        "same-length-twice",
        "over-limit",
        "gzip-over-limit",
    ],
)
def test_answers_are_framed_as_http_frames_them(answer: bytes, body: bytes | None) -> None:
    script = Scripted([answer], close_after=True)

    assert _exchange(script, {}) == [(200, body)]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
        b"HTTP/1.1 200 OK\r\nX-Fill: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=[
        "two-lengths",
        "cut-short",
        "negative-length",
        "no-colon",
        "http-2",
        "not-http",
        "bad-chunk",
        "0x-chunk",
        "unknown-transfer-encoding",
        "unasked-encoding",
        "broken-gzip",
        "huge-head",
    ],
)
def test_a_broken_answer_is_no_answer(answer: bytes) -> None:
    script = Scripted([answer], close_after=True)

    with pytest.raises(NoAnswer):
        _exchange(script, {})


def test_a_silent_server_times_out_at_the_read_deadline() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(30)
        finally:
            writer.close()

    async def scenario() -> float:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await Http1(_refuse, ssl.create_default_context, limit=1).request(
                "GET", url, {}, None, connect=1.0, read=0.2, deadline=started + 10
            )
        except TimeoutError:
            return loop.time() - started
        finally:
            server.close()
        raise AssertionError("no timeout")

    assert _run(scenario) < 5  # the read deadline (0.2 s), not the call's (10 s)


def test_no_more_requests_at_once_than_the_limit() -> None:
    """Two slots, five calls: never more than two connections, all answered."""
    active = 0
    most = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, most
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                active += 1
                most = max(most, active)
                await asyncio.sleep(0.05)
                active -= 1
                writer.write(_ok(b"ok"))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async def scenario() -> Sequence[tuple[int, bytes | None]]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = URL(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
        http = _client(limit=2)
        try:
            return await asyncio.gather(*(_get(http, url) for _ in range(5)))
        finally:
            http.close()
            server.close()
            await server.wait_closed()  # each handler has seen its connection's end

    assert _run(scenario) == [(200, b"ok")] * 5
    assert most == 2
