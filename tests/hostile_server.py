"""A hostile server: the local emulator, misbehaving on purpose, for tests and benchmarks.

It serves the emulator's API and adds what a broken or hostile API could do to a client: echo
the key it was sent in error bodies, answer polls with huge, gzip-bombed or trickled JSON, send
huge, trickled or decompression-bomb results, redirect result downloads, and point result URLs
at internal addresses. Each misbehaviour is a field of ``Hostility``, off by default; ``MODES``
names the ones the benchmark runs. Change them while it runs through ``HostileControl`` (in
process) or ``POST /_hostile/hostility`` (a JSON object of fields).

Polls (``GET /v1/order/{id}``) and result downloads misbehave; uploads and orders work, so a run
spends what it would and the hostility meets ``collect``. ``echo_key`` alone also refuses every
order POST (422), so a run has errors to echo.

Run one: ``python -m tests.hostile_server --mode huge-answer --port 0 --key KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import secrets
import signal
import struct
import sys
import zlib
from dataclasses import dataclass

from aiohttp import web

from pipeline import api, eventloop
from pipeline.sandbox.app import Handler, make_app
from pipeline.sandbox.replies import STATE
from pipeline.sandbox.server import AppFactory, serve
from pipeline.sandbox.state import SandboxConfig, SandboxState

__all__ = ["INTERNAL_PATH", "MODES", "HostileControl", "Hostility", "hostile_app"]

INTERNAL_PATH = "/_hostile/internal"  # a "service" on an internal address a result URL may name
_RESULT_PREFIX = "/_sandbox/results/"
_CHUNK = 256 * 1024
# A tiny valid JPEG: what the internal "service" answers, so fetching it would look like success.
_TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b"
    "0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ff"
    "c0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
    "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a108"
    "2342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53545556"
    "5758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9"
    "aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7"
    "f8f9faffda0008010100003f00fbd3ffd9"
)


@dataclass(frozen=True, slots=True)
class Hostility:
    """What the hostile server does; all off by default."""

    echo_key: bool = False  # error bodies quote the key sent; order POSTs are refused (422)
    key_in_answers: bool = False  # the key in enhancement titles and result URLs (?sig=KEY)
    huge_answer_bytes: int = 0  # polls answered with this much JSON (whitespace, then the body)
    gzip_answer_bytes: int = 0  # polls answered gzip'd: a few KB that inflate to this many bytes
    trickle_answer_seconds: float = 0.0  # polls answered one byte per this many seconds, forever
    huge_result_bytes: int = 0  # results this many bytes long
    trickle_result_seconds: float = 0.0  # results sent one byte per this many seconds, forever
    bomb_result_side: int = 0  # results are PNGs this many pixels square (a few hundred KB)
    redirect_results_to: str = ""  # results answer 302 to this URL ("{port}": the server's)
    result_url: str = ""  # polls name this URL as the result ("{port}": the server's)
    poll_body: str = ""  # polls answered with this text as JSON (a wrong shape, deep nesting)


MODES: dict[str, Hostility] = {
    "echo-key": Hostility(echo_key=True, key_in_answers=True),
    "huge-answer": Hostility(huge_answer_bytes=1536 * 1024 * 1024),
    "gzip-answer": Hostility(gzip_answer_bytes=1024 * 1024 * 1024),
    "trickle-answer": Hostility(trickle_answer_seconds=0.5),
    "huge-result": Hostility(huge_result_bytes=1536 * 1024 * 1024),
    "trickle-result": Hostility(trickle_result_seconds=0.5),
    "bomb-result": Hostility(bomb_result_side=13000),
    "redirect-result": Hostility(redirect_results_to="http://localhost:{port}" + INTERNAL_PATH),
    "internal-url": Hostility(result_url="http://localhost:{port}" + INTERNAL_PATH),
}


class HostileControl:
    """The hostile server's current misbehaviour, switchable from any thread."""

    def __init__(self, hostility: Hostility = Hostility()) -> None:
        self.hostility = hostility  # one attribute, replaced whole: safe across threads

    def set(self, hostility: Hostility) -> None:
        self.hostility = hostility


_CONTROL = web.AppKey("hostile_control", HostileControl)


def hostile_app(control: HostileControl) -> AppFactory:
    """An app factory for ``serve``/``SandboxThread``: the emulator, misbehaving as told."""

    def factory(state: SandboxState) -> web.Application:
        app = make_app(state)
        app[_CONTROL] = control
        # Outermost, so it sees (and may rewrite) every answer, the key checks' included.
        app.middlewares.insert(0, _misbehave)
        app.router.add_get(INTERNAL_PATH, _internal)
        app.router.add_post("/_hostile/hostility", _set_hostility)
        return app

    return factory


@web.middleware
async def _misbehave(request: web.Request, handler: Handler) -> web.StreamResponse:
    hostility = request.app[_CONTROL].hostility
    path = request.path
    if path.startswith(_RESULT_PREFIX):
        return await _result(request, hostility) or await handler(request)
    is_order_post = request.method == "POST" and path == api.SUBMIT_PATH
    if hostility.echo_key and is_order_post:
        return _echo(request, 422)
    response = await handler(request)
    if not path.startswith("/v1/") or not isinstance(response, web.Response):
        return response
    if response.status >= 400:
        return _echo(request, response.status) if hostility.echo_key else response
    if hostility.key_in_answers and path.startswith("/v1/catalog"):
        return _with_key(response, request)
    if request.method == "GET" and path.startswith("/v1/order/"):
        return await _poll(request, response, hostility)
    return response


def _sent_key(request: web.Request) -> str:
    return request.headers.get(api.API_KEY_HEADER, "")


def _echo(request: web.Request, status: int) -> web.Response:
    """An error body that quotes the key, whole and cut, as careless servers do."""
    key = _sent_key(request)
    body = {
        "error": f"request refused for api key {key} (key starts {key[:6]}...)",
        "key": f"api_error_{key}",
        "detail": {"x-api-key": key},
    }
    return web.json_response(body, status=status)


def _with_key(response: web.Response, request: web.Request) -> web.Response:
    """The catalog answer with the key in every enhancement's title (spaces keep theirs, so
    a run still finds 'indoor')."""
    body = json.loads(response.body)  # type: ignore[arg-type]
    for record in body.get("data", []):
        for item in record.get("items", []):
            item["title"] = f"{item.get('title', '')} {_sent_key(request)}"
    return web.json_response(body, status=response.status)


async def _poll(
    request: web.Request, response: web.Response, hostility: Hostility
) -> web.StreamResponse:
    body = json.loads(response.body)  # type: ignore[arg-type]
    port = request.url.port
    for image in body.get("generated_images", []):
        if hostility.result_url:
            image["src"] = hostility.result_url.format(port=port)
        if hostility.key_in_answers:
            image["src"] += f"?sig={_sent_key(request)}"
    text = json.dumps(body).encode()
    if hostility.poll_body:
        return web.Response(text=hostility.poll_body, content_type="application/json")
    if hostility.trickle_answer_seconds:
        return await _trickle(request, "application/json", hostility.trickle_answer_seconds)
    if hostility.gzip_answer_bytes:
        return web.Response(
            body=_gzip_bomb(hostility.gzip_answer_bytes, text),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    if hostility.huge_answer_bytes:
        padding = max(0, hostility.huge_answer_bytes - len(text))
        return await _stream(request, "application/json", b" ", padding, text)
    return web.Response(body=text, status=response.status, content_type="application/json")


async def _result(request: web.Request, hostility: Hostility) -> web.StreamResponse | None:
    """A misbehaving result download, or None to serve the emulator's own."""
    port = request.url.port
    if hostility.redirect_results_to:
        location = hostility.redirect_results_to.format(port=port)
        return web.Response(status=302, headers={"Location": location})
    if hostility.bomb_result_side:
        request.app[STATE].count("downloads")
        return web.Response(body=_png_bomb(hostility.bomb_result_side), content_type="image/png")
    if hostility.huge_result_bytes:
        return await _stream(
            request, "image/jpeg", b"\0", hostility.huge_result_bytes, b"", head=b"\xff\xd8"
        )
    if hostility.trickle_result_seconds:
        return await _trickle(request, "image/jpeg", hostility.trickle_result_seconds)
    return None


async def _internal(request: web.Request) -> web.Response:
    """An internal service a result URL points at; the emulator's stats count its hits."""
    return web.Response(body=_TINY_JPEG, content_type="image/jpeg")


async def _set_hostility(request: web.Request) -> web.Response:
    fields = await request.json()
    if not isinstance(fields, dict):
        raise web.HTTPBadRequest(text="expected a JSON object of Hostility fields")
    try:
        hostility = Hostility(**fields)
    except TypeError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    await asyncio.get_running_loop().run_in_executor(None, _prepare, hostility)
    request.app[_CONTROL].set(hostility)
    return web.json_response(dataclasses.asdict(hostility))


async def _stream(
    request: web.Request, content_type: str, fill: bytes, size: int, tail: bytes, head: bytes = b""
) -> web.StreamResponse:
    """``head``, then ``size`` bytes of ``fill``, then ``tail``; no Content-Length (chunked)."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    block = fill * _CHUNK
    try:
        await response.write(head)
        sent = 0
        while sent < size:
            part = block[: min(_CHUNK, size - sent)]
            await response.write(part)
            sent += len(part)
        await response.write(tail)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client hung up, as it should on an answer over its cap
    return response


async def _trickle(request: web.Request, content_type: str, seconds: float) -> web.StreamResponse:
    """Headers at once, then one byte every ``seconds``, until the client hangs up."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    try:
        while True:
            await response.write(b" ")
            await asyncio.sleep(seconds)
    except (ConnectionError, RuntimeError):
        return response


@functools.lru_cache(maxsize=4)
def _png_bomb(side: int) -> bytes:
    """A greyscale PNG ``side`` pixels square, all black: ~1/1000 of its pixels in bytes."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the row's pixels
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def _gzip_bomb(size: int, tail: bytes) -> bytes:
    """``size`` bytes of whitespace, then ``tail``, gzip'd into about size / 1000 bytes."""
    prefix, state = _gzip_prefix(size)
    compressor = state.copy()  # the whitespace is compressed once per size, not per answer
    return prefix + compressor.compress(tail) + compressor.flush()


@functools.lru_cache(maxsize=4)
def _gzip_prefix(size: int) -> tuple[bytes, zlib._Compress]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1024 * 1024)
    return b"".join(compressor.compress(block) for _ in range(size // len(block))), compressor


def _prepare(hostility: Hostility) -> None:
    """Build the bombs a hostility serves, so its first answer is not seconds late."""
    if hostility.gzip_answer_bytes:
        _gzip_prefix(hostility.gzip_answer_bytes)
    if hostility.bomb_result_side:
        _png_bomb(hostility.bomb_result_side)


def main(argv: list[str]) -> int:
    """Serve a hostile emulator until SIGINT or SIGTERM, after printing its URL."""
    parser = argparse.ArgumentParser(prog="python -m tests.hostile_server")
    parser.add_argument("--mode", choices=sorted(MODES), help="start misbehaving at once")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=None)
    parser.add_argument("--eta-seconds", type=int, default=0, help="0: results at once")
    args = parser.parse_args(argv)
    control = HostileControl(MODES[args.mode] if args.mode else Hostility())
    _prepare(control.hostility)
    config = SandboxConfig(
        api_key=args.key or secrets.token_urlsafe(24),
        orders_per_window=1_000_000,
        window_seconds=1,
        eta_seconds=args.eta_seconds,
        time_scale=0,
    )
    eventloop.run(_serve_until_signal(config, args.host, args.port, control))
    return 0


async def _serve_until_signal(
    config: SandboxConfig, host: str, port: int, control: HostileControl
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve(config, host, port, hostile_app(control)) as sandbox:
        print(f"aihd hostile sandbox (local emulator, misbehaving): {sandbox.url}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
