"""The API client against the local emulator: shapes, and each error mapped to its kind."""

from __future__ import annotations

import asyncio
import io
import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.helpers import content_disposition_header
from PIL import Image

from pipeline import api
from pipeline.api.transport import _content_type, _parse_json
from pipeline.api.v1 import ApiClient, Timeouts, image_disposition
from pipeline.errors import (
    AuthRefused,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TransientError,
)
from pipeline.ordering.catalog import Catalog
from pipeline.sandbox import Faults, Sandbox


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _selected(client: ApiClient, space: str, *titles: str) -> tuple[str, list[Any]]:
    catalog = await Catalog.fetch(client)
    options = catalog.resolve(space, list(titles))
    return options.space.name, options.selected_widgets


def test_every_call_returns_its_documented_shape(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Upload, catalog, submit, order details and download, end to end."""
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            spaces = await client.spaces()
            assert {s.title.lower() for s in spaces} == {"indoor", "outdoor"}
            widgets = await client.widgets(spaces[0].name)
            assert widgets and widgets[0].items
            order_id = await client.upload(photo)
            assert isinstance(order_id, str) and order_id
            before = await client.order(order_id)
            assert before.never_submitted
            space, selected = await _selected(client, "indoor", "Add Fire to Fireplace")
            done = await client.submit(order_id, space, selected)
            assert done.order_id == order_id and done.image_id and isinstance(done.eta, int)
            for _ in range(200):
                details = await client.order(order_id)
                if details.generated_images:
                    break
                await asyncio.sleep(0.05)
            assert not details.never_submitted
            result = tmp_path / "result.jpg"
            written = await client.download(details.generated_images[0].src, result)
            assert written == result.stat().st_size > 0
            with Image.open(result) as image:
                image.verify()

    run(scenario())
    assert sandbox.stats().orders_charged == 1


def test_wrong_key_is_refused_without_echoing_it(sandbox: Sandbox) -> None:
    canary = "CANARY-key-0123456789"

    async def scenario() -> None:
        async with ApiClient(sandbox.url, canary) as client:
            assert canary not in repr(client)
            await client.spaces()

    with pytest.raises(AuthRefused) as caught:
        run(scenario())
    assert caught.value.status == 401
    assert caught.value.exit_code == 3
    assert canary not in str(caught.value) and canary not in repr(caught.value)


def test_rate_limited_error_carries_the_api_body(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    sandbox = make_sandbox(orders_per_window=1, window_seconds=600)
    photos = [photo_factory(tmp_path, f"p{n}.jpg") for n in range(2)]

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            space, selected = await _selected(client, "indoor")
            first, second = [await client.upload(p) for p in photos]
            await client.submit(first, space, selected)
            await client.submit(second, space, selected)

    with pytest.raises(RateLimited) as caught:
        run(scenario())
    assert caught.value.status == 429
    assert caught.value.error == "rate-limit exceeded, 10 generates per 10 minutes only"
    assert sandbox.stats().orders_charged == 1


@pytest.mark.parametrize(
    "name",
    ["IMG_0001.JPG", "p000001.jpg", "a-b_c.d.webp", "Living Room (2).jpg", "été.png", 'a"b.jpg'],
)
def test_image_part_header_is_what_aiohttp_would_write(name: str) -> None:
    """Plain names skip aiohttp's quoting for speed; the header must come out the same."""
    expected = content_disposition_header("form-data", name="image", filename=name)
    assert image_disposition(name) == expected


@pytest.mark.parametrize(
    "name",
    ["IMG_0001.JPG", "p000001.jpg", "a.heic", "Weird.Jpg", "a.tar.gz", "b.tgz", "c.png.gz",
     "data:x.jpg", ".jpg", "..jpg", "noext", "a.", "a..png", "été.png", "a.svgz", "x.Z"],
)  # fmt: skip
def test_image_part_content_type_is_what_mimetypes_guesses(name: str) -> None:
    """The file part's type is looked up once per suffix; whole names where more decides."""
    assert _content_type(name) == (mimetypes.guess_type(name)[0] or "application/octet-stream")


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1}', b"[1, 2]", '{"a": "é"}'.encode(), b'{"s": "\\ud800"}', b"\xef\xbb\xbf{}",
     '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-16-le"), b'{"a": 1} x', b"{\xff}"],
)  # fmt: skip
def test_answers_are_parsed_as_json_loads_parses_them(raw: bytes) -> None:
    """An answer that is plainly UTF-8 skips json's encoding guess: same value, same error."""

    def parsed(parse: Callable[[bytes], Any]) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            return type(exc)

    assert parsed(_parse_json) == parsed(json.loads)


def test_photos_with_names_that_need_quoting_upload(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    photos = [photo_factory(tmp_path, name) for name in ("Living Room (2).jpg", "été.jpg")]

    async def scenario() -> list[str]:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            return [await client.upload(photo) for photo in photos]

    order_ids = run(scenario())
    assert len(set(order_ids)) == 2 and all(order_ids)


def test_upload_without_a_file_is_rejected_with_the_api_key(sandbox: Sandbox) -> None:
    """The emulator answers as the docs do: 400 {"error": "http: no such file"}."""

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            # The public upload() always sends a file; this reaches the same error boundary.
            form = (
                '--b0undary\r\nContent-Disposition: form-data; name="service_name"\r\n\r\n'
                f"{api.SERVICE}\r\n--b0undary--\r\n"
            )
            headers = {
                "Content-Type": "multipart/form-data; boundary=b0undary",
                "x-api-key": sandbox.api_key,
            }
            await client._json("POST", api.UPLOAD_PATH, data=form.encode(), headers=headers)

    with pytest.raises(RequestRejected) as caught:
        run(scenario())
    assert caught.value.status == 400
    assert caught.value.error == "http: no such file"
    assert caught.value.key == "api_error_no_such_file"


@pytest.mark.parametrize(
    "faults",
    [
        Faults(lost_after_charge_rate=1.0, seed=1),
        Faults(reset_rate=1.0, seed=1),
        Faults(error_rate=1.0, seed=1),
    ],
    ids=["lost-after-charge", "reset", "5xx"],
)
def test_order_post_with_a_lost_answer_is_outcome_unknown(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path, faults: Faults
) -> None:
    """Never a plain retryable error: the order may have been charged."""
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            space, selected = await _selected(client, "indoor")
            order_id = await client.upload(photo)
            sandbox.set_faults(faults)
            await client.submit(order_id, space, selected)

    with pytest.raises(OutcomeUnknown) as caught:
        run(scenario())
    assert not isinstance(caught.value, TransientError)
    charged = sandbox.stats().orders_charged
    assert charged == (1 if faults.lost_after_charge_rate else 0)


@pytest.mark.parametrize(
    "faults", [Faults(reset_rate=1.0, seed=2), Faults(error_rate=1.0, seed=2)], ids=["reset", "5xx"]
)
def test_safe_calls_fail_as_transient(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path, faults: Faults
) -> None:
    photo = photo_factory(tmp_path, "room.jpg")
    sandbox.set_faults(faults)

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            await client.upload(photo)

    with pytest.raises(TransientError):
        run(scenario())


def test_a_stalled_read_times_out_as_transient(sandbox: Sandbox) -> None:
    sandbox.set_faults(Faults(stall_rate=1.0, stall_seconds=5.0, seed=3))

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key, timeouts=Timeouts(read=0.3)) as client:
            await client.spaces()

    with pytest.raises(TransientError, match="timed out"):
        run(scenario())


def test_unreachable_api_is_transient_even_for_an_order_post() -> None:
    """Nothing was sent when the connection is refused: safe to retry, not 'unknown'."""

    async def scenario() -> None:
        async with ApiClient("http://127.0.0.1:9", "k") as client:
            await client.submit("order", "space", [])

    with pytest.raises(TransientError, match="cannot connect"):
        run(scenario())


def test_download_refuses_urls_that_are_not_http(sandbox: Sandbox, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            await client.download("file:///etc/passwd", tmp_path / "x")

    with pytest.raises(RequestRejected, match="only http"):
        run(scenario())
    assert not (tmp_path / "x").exists()


def test_result_image_is_enhanced(sandbox: Sandbox, tmp_path: Path) -> None:
    """The emulator's result is a real image made from the photo, not a copy of it."""
    dim = Image.new("RGB", (64, 48), (60, 50, 40))
    photo = tmp_path / "dim.jpg"
    dim.save(photo, "JPEG")

    async def scenario() -> bytes:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            space, selected = await _selected(client, "indoor")
            order_id = await client.upload(photo)
            await client.submit(order_id, space, selected)
            while not (details := await client.order(order_id)).generated_images:
                await asyncio.sleep(0.05)
            out = tmp_path / "out.jpg"
            await client.download(details.generated_images[0].src, out)
            return out.read_bytes()

    with Image.open(io.BytesIO(run(scenario()))) as result:
        assert result.size == (64, 48)
        assert result.convert("RGB").getpixel((10, 10)) != (60, 50, 40)


def test_a_cookie_the_api_sets_is_never_sent_back() -> None:
    """The API authenticates by its key header only: a Set-Cookie in its answers (a proxy's,
    or a hostile server's on its address) is not kept, so no later call carries it."""
    cookies_seen: list[str] = []

    async def order(request: aiohttp.web.Request) -> aiohttp.web.Response:
        cookies_seen.append(request.headers.get("Cookie", ""))
        answer = aiohttp.web.json_response({"id": "o1", "status": "processing"})
        answer.set_cookie("session", "planted", path="/")
        return answer

    async def scenario() -> None:
        app = aiohttp.web.Application()
        app.router.add_get("/v1/order/{order_id}", order)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            # A host name: aiohttp's own jar keeps no cookie of an IP address anyway.
            async with ApiClient(f"http://localhost:{port}", "key") as client:
                await client.order("o1")
                await client.order("o1")
        finally:
            await runner.cleanup()

    run(scenario())
    assert cookies_seen == ["", ""]
