"""The local emulator over real HTTP: the API's shapes, its order window, charges and faults."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from PIL import Image

from pipeline import api
from pipeline.api.v1 import ApiClient
from pipeline.sandbox import Faults, Sandbox, SandboxConfig, SandboxThread

T = TypeVar("T")
PhotoFactory = Callable[..., Path]
RATE_LIMIT_BODY = {"error": "rate-limit exceeded, 10 generates per 10 minutes only"}


class Api:
    """A bare aiohttp session on the emulator, answering (status, JSON body)."""

    def __init__(self, sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
        self.sandbox, self.session = sandbox, session

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.sandbox.url + path, **kwargs) as response:
            return response.status, await response.json()

    async def upload(self, photo: Path, service: str = api.SERVICE) -> str:
        status, body = await self.call("POST", api.UPLOAD_PATH, data=_form(photo, service))
        assert status == 200, body
        return str(body["order_id"])

    async def selection(self, space: str, titles: list[str]) -> list[dict[str, str]]:
        _, body = await self.call(
            "GET", api.ITEMS_PATH, params={"space_name": space, "service_name": api.SERVICE}
        )
        (widget,) = body["data"]
        by_title = {item["title"]: item["id"] for item in widget["items"]}
        return [{"id": widget["id"], "item_id": by_title[title]} for title in titles]

    async def submit(
        self, order_id: str, space: str = "space-ie-indoor", selected: list[Any] | None = None
    ) -> tuple[int, Any]:
        body = {"order_id": order_id, "space_name": space, "selected_widgets": selected or []}
        return await self.call("POST", api.SUBMIT_PATH, json=body)


def _form(photo: Path, service: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("service_name", service)
    form.add_field("image", photo.open("rb"), filename=photo.name)
    return form


@pytest.fixture
def stored_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[Path]]:
    """The photo files of emulators started after this fixture (their temp root is ours)."""
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    return lambda: sorted(temp_root.glob("aihd-sandbox-*/photos/*"))


async def _finish(client: Api, photo: Path) -> tuple[bytes, bytes]:
    """Upload, submit and wait for one order: its before image's and first result's bytes."""
    order_id = await client.upload(photo)
    assert (await client.submit(order_id))[0] == 200
    path = api.ORDER_PATH.format(order_id=order_id)
    deadline = time.monotonic() + 10
    while (details := (await client.call("GET", path))[1])["status"] != "finished":
        assert time.monotonic() < deadline, details
        await asyncio.sleep(0.05)
    async with client.session.get(details["before_image_src"]) as before:
        assert (before.status, before.content_type) == (200, "application/octet-stream")
        before_bytes = await before.read()
    async with client.session.get(details["generated_images"][0]["src"]) as result:
        assert (result.status, result.content_type) == (200, "image/jpeg")
        return before_bytes, await result.read()


def talk(sandbox: Sandbox, scenario: Callable[[Api], Awaitable[T]], key: str | None = None) -> T:
    """Run scenario against the emulator with a session that sends the key."""

    async def main() -> T:
        headers = {api.API_KEY_HEADER: sandbox.api_key if key is None else key}
        async with aiohttp.ClientSession(headers=headers) as session:
            return await scenario(Api(sandbox, session))

    return asyncio.run(main())


@pytest.mark.parametrize("key", ["wrong-key", ""], ids=["wrong", "empty"])
def test_a_bad_key_gets_401_on_every_v1_route(sandbox: Sandbox, key: str) -> None:
    async def scenario(client: Api) -> list[tuple[int, Any]]:
        return [
            await client.call("GET", api.SPACES_PATH, params={"service_name": api.SERVICE}),
            await client.call("GET", api.ORDER_PATH.format(order_id="x")),
            await client.submit("x"),
        ]

    unauthorized = (401, {"error": "invalid api key", "key": "api_error_unauthorized"})
    assert talk(sandbox, scenario, key=key) == [unauthorized] * 3
    assert sandbox.stats().order_posts == 1
    assert sandbox.stats().orders_charged == 0


def test_a_plan_without_the_service_gets_403(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(plan_allows_service=False)

    async def scenario(client: Api) -> tuple[int, Any]:
        return await client.call("GET", api.SPACES_PATH, params={"service_name": api.SERVICE})

    assert talk(sandbox, scenario) == (
        403,
        {"error": "your plan does not include this service", "key": "api_error_forbidden"},
    )


def test_catalog_ids_are_opaque_and_differ_per_instance(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    async def scenario(client: Api) -> tuple[Any, Any, Any]:
        _, spaces = await client.call(
            "GET", api.SPACES_PATH, params={"service_name": api.SERVICE, "active": "true"}
        )
        query = {"service_name": api.SERVICE}
        _, indoor = await client.call(
            "GET", api.ITEMS_PATH, params={**query, "space_name": "space-ie-indoor"}
        )
        _, outdoor = await client.call(
            "GET", api.ITEMS_PATH, params={**query, "space_name": "space-ie-outdoor"}
        )
        return spaces["data"], indoor["data"], outdoor["data"]

    first, second = make_sandbox(), make_sandbox()
    spaces, indoor, outdoor = talk(first, scenario)
    assert [(s["name"], s["title"]) for s in spaces] == [
        ("space-ie-indoor", "Indoor"),
        ("space-ie-outdoor", "Outdoor"),
    ]
    assert set(spaces[0]) == set(api.SpaceRecord.__annotations__)
    assert indoor[0]["title"] == "Enhancement Options"
    assert (indoor[0]["type"], indoor[0]["is_optional"]) == ("multi", True)
    assert [i["title"] for i in indoor[0]["items"]] == [
        "Add Fire to Fireplace",
        "Add Screen to TV",
        "Remove Extra Objects",
    ]
    assert [i["title"] for i in outdoor[0]["items"]] == ["Remove Extra Objects"]
    assert talk(second, scenario)[0][0]["id"] != spaces[0]["id"]


def test_an_order_goes_idle_processing_finished_with_a_real_enhanced_result(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """An order is idle, then processing for its eta, then finished with real results."""
    # Processing for 1.5 s: a status asked at once cannot miss it, even on a loaded machine.
    sandbox = make_sandbox(eta_seconds=30, time_scale=0.05, results_per_order=2)
    photo = photo_factory(tmp_path, "room.jpg", size=(80, 60), color=(70, 60, 40))

    async def scenario(client: Api) -> tuple[list[str], Any, Any, bytes]:
        order_id = await client.upload(photo)
        path = api.ORDER_PATH.format(order_id=order_id)
        statuses = [(await client.call("GET", path))[1]["status"]]
        selected = await client.selection("space-ie-indoor", ["Add Fire to Fireplace"])
        _, submitted = await client.submit(order_id, selected=selected)
        statuses.append((await client.call("GET", path))[1]["status"])
        await asyncio.sleep(1.5)  # the eta: finished from now on
        _, details = await client.call("GET", path)
        statuses.append(details["status"])
        async with client.session.get(details["generated_images"][0]["src"]) as result:
            assert result.content_type == "image/jpeg"
            return statuses, submitted, details, await result.read()

    statuses, submitted, details, result = talk(sandbox, scenario)
    assert statuses == ["idle", "processing", "finished"]
    assert submitted["order_id"] == details["id"]
    assert submitted["eta"] == 30 and submitted["image_id"]
    assert details["space"] == "space-ie-indoor"
    assert [(g["sequence"], g["status"]) for g in details["generated_images"]] == [
        (1, "regular_finished"),
        (2, "regular_finished"),
    ]
    with Image.open(io.BytesIO(result)) as image:
        assert image.size == (80, 60)
        assert image.convert("RGB").getpixel((40, 30)) != (70, 60, 40)
    stats = sandbox.stats()
    assert (stats.uploads, stats.orders_charged, stats.downloads) == (1, 1, 1)
    assert list(stats.charges.values()) == [1]
    assert stats.requests[f"POST {api.SUBMIT_PATH}"] == 1


def test_a_small_photo_is_kept_in_memory_once_and_its_result_decodes(
    sandbox: Sandbox,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    stored_files: Callable[[], list[Path]],
) -> None:
    photo = photo_factory(tmp_path, "room.jpg", size=(80, 60))

    async def scenario(client: Api) -> list[tuple[bytes, bytes]]:
        return [await _finish(client, photo) for _ in range(2)]  # the same bytes twice

    for _, result in talk(sandbox, scenario):
        with Image.open(io.BytesIO(result)) as image:
            assert (image.format, image.size) == ("JPEG", (80, 60))
    assert stored_files() == []  # no file per upload: that was the benchmark's bottleneck
    assert sandbox.stats().uploads == 2


def test_the_before_image_of_a_small_photo_is_the_uploaded_bytes(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    photo = photo_factory(tmp_path, "room.png", fmt="PNG")
    before, _ = talk(sandbox, lambda client: _finish(client, photo))
    assert before == photo.read_bytes()


def test_a_photo_beyond_the_memory_budget_is_stored_on_disk_and_still_works(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    stored_files: Callable[[], list[Path]],
) -> None:
    in_memory = photo_factory(tmp_path, "first.jpg")
    on_disk = photo_factory(tmp_path, "second.jpg", size=(96, 72))
    sandbox = make_sandbox(photo_memory_bytes=in_memory.stat().st_size)  # room for one

    async def scenario(client: Api) -> list[tuple[bytes, bytes]]:
        return [await _finish(client, photo) for photo in (in_memory, on_disk, on_disk)]

    answers = talk(sandbox, scenario)
    photos = [(in_memory, (64, 48)), (on_disk, (96, 72)), (on_disk, (96, 72))]
    for (photo, size), (before, result) in zip(photos, answers, strict=True):
        assert before == photo.read_bytes()
        with Image.open(io.BytesIO(result)) as image:
            assert image.size == size
    (stored,) = stored_files()  # one file, shared by both uploads of the same bytes
    assert stored.name == hashlib.sha256(on_disk.read_bytes()).hexdigest()
    assert stored.read_bytes() == on_disk.read_bytes()


def test_the_order_window_answers_429_with_the_documented_body(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The third order within the window gets 429 with the documented body; later, room again."""
    # 2 s: three POSTs in a row cannot straddle it, even on a loaded machine.
    sandbox = make_sandbox(orders_per_window=2, window_seconds=2.0)
    photos = [photo_factory(tmp_path, f"p{n}.jpg") for n in range(4)]

    async def scenario(client: Api) -> list[tuple[int, Any, str | None]]:
        order_ids = [await client.upload(photo) for photo in photos]
        answers = []
        for order_id in order_ids[:3]:
            async with client.session.post(
                sandbox.url + api.SUBMIT_PATH,
                json={
                    "order_id": order_id,
                    "space_name": "space-ie-indoor",
                    "selected_widgets": [],
                },
            ) as response:
                answers.append(
                    (response.status, await response.json(), response.headers.get("Retry-After"))
                )
        await asyncio.sleep(2.0)  # every charge above is now 2 s old: out of the window
        status, body = await client.submit(order_ids[3])
        answers.append((status, body, None))
        return answers

    answers = talk(sandbox, scenario)
    assert [status for status, _, _ in answers] == [200, 200, 429, 200]
    assert answers[2][1:] == (RATE_LIMIT_BODY, None)
    stats = sandbox.stats()
    assert (stats.orders_charged, stats.rate_limited, stats.order_posts) == (3, 1, 4)
    assert stats.uploads == 4  # uploads are not counted in the order window


def test_posting_the_same_order_twice_charges_twice(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    async def scenario(client: Api) -> list[int]:
        order_id = await client.upload(photo_factory(tmp_path, "room.jpg"))
        return [(await client.submit(order_id))[0] for _ in range(2)]

    assert talk(sandbox, scenario) == [200, 200]
    assert list(sandbox.stats().charges.values()) == [2]


def _status_after_a_failed_submit(sandbox: Sandbox, photo: Path, faults: Faults) -> str:
    """Submit under ``faults`` (the client must see a connection error), then the status."""

    async def scenario(client: Api) -> str:
        order_id = await client.upload(photo)
        sandbox.set_faults(faults)
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.submit(order_id)
        sandbox.set_faults(Faults())
        return str(
            (await client.call("GET", api.ORDER_PATH.format(order_id=order_id)))[1]["status"]
        )

    return talk(sandbox, scenario)


def test_an_answer_lost_after_charge_is_a_connection_error_but_charged(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A lost answer: the client sees a connection error, the order is charged and processing."""
    sandbox = make_sandbox(
        eta_seconds=30, time_scale=1.0
    )  # processing for 30 s: the status cannot miss it
    photo = photo_factory(tmp_path, "room.jpg")
    faults = Faults(lost_after_charge_rate=1.0, seed=1)
    assert _status_after_a_failed_submit(sandbox, photo, faults) == "processing"
    stats = sandbox.stats()
    assert (stats.orders_charged, list(stats.charges.values())) == (1, [1])


def test_a_charge_answered_500_with_the_api_body_is_charged_and_its_details_may_lag(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """error_after_charge: charged, then a 500 with {"error", "key"}; details_lag: the order
    reads idle, with no result nor image id, until the lag after the charge has passed."""
    lag = 1.5
    sandbox.set_faults(Faults(error_after_charge_rate=1.0, details_lag_seconds=lag))
    path_of = api.ORDER_PATH.format

    async def scenario(client: Api) -> tuple[tuple[int, Any], Any, float, Any]:
        order_id = await client.upload(photo_factory(tmp_path, "room.jpg"))
        answer = await client.submit(order_id)
        charged = time.monotonic()
        early = (await client.call("GET", path_of(order_id=order_id)))[1]
        await asyncio.sleep(lag - (time.monotonic() - charged) + 0.1)
        later = (await client.call("GET", path_of(order_id=order_id)))[1]
        return answer, early, time.monotonic() - charged, later

    answer, early, waited, later = talk(sandbox, scenario)
    assert answer == (500, {"error": "internal server error", "key": "api_error_internal"})
    assert (early["status"], early["generated_images"], early["image_id"]) == ("idle", [], "")
    assert waited > lag and later["status"] in ("processing", "finished") and later["image_id"]
    assert list(sandbox.stats().charges.values()) == [1]


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` every 10 ms for at most 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        await asyncio.sleep(0.01)


def test_a_held_answer_is_charged_reported_and_dropped_when_the_client_leaves(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """hold_after_charge: the order is charged, its answer held (stats say so) until the
    client goes away, and then nothing is left held."""
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario(client: Api) -> tuple[int, int, dict[str, int]]:
        order_id = await client.upload(photo)
        sandbox.set_faults(Faults(hold_after_charge_rate=1.0, seed=1))
        posting = asyncio.ensure_future(client.submit(order_id))
        await _until(lambda: sandbox.stats().holding == 1, "held")
        held = sandbox.stats()
        posting.cancel()  # the client goes away: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await posting
        await _until(lambda: sandbox.stats().holding == 0, "released")
        return held.held, held.orders_charged, sandbox.stats().charges

    held, charged_while_held, charges = talk(sandbox, scenario)
    assert (held, charged_while_held, list(charges.values())) == (1, 1, [1])
    assert json.loads(_get(sandbox.url + "/_sandbox/stats"))["held"] == 1


def test_a_held_answer_comes_after_hold_seconds(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A held answer is sent once hold_seconds pass, if the client is still there."""
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario(client: Api) -> int:
        order_id = await client.upload(photo)
        sandbox.set_faults(Faults(hold_after_charge_rate=1.0, hold_seconds=0.2, seed=1))
        return (await client.submit(order_id))[0]

    assert talk(sandbox, scenario) == 200
    stats = sandbox.stats()
    assert (stats.held, stats.holding, stats.orders_charged) == (1, 0, 1)


def test_a_reset_is_a_connection_error_and_charges_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    photo = photo_factory(tmp_path, "room.jpg")
    faults = Faults(reset_rate=1.0, seed=1)
    assert _status_after_a_failed_submit(sandbox, photo, faults) == "idle"
    stats = sandbox.stats()
    assert (stats.order_posts, stats.orders_charged, stats.charges) == (1, 0, {})


def test_error_faults_answer_500_and_stalls_answer_late(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    async def scenario(client: Api) -> tuple[tuple[int, Any], int, float]:
        sandbox.set_faults(Faults(error_rate=1.0, seed=1))
        failed = await client.call("POST", api.UPLOAD_PATH, data=_form(photo, api.SERVICE))
        sandbox.set_faults(Faults(stall_rate=1.0, stall_seconds=0.3, seed=1))
        started = time.monotonic()
        status, _ = await client.call("GET", api.SPACES_PATH, params={"service_name": api.SERVICE})
        return failed, status, time.monotonic() - started

    photo = photo_factory(tmp_path, "room.jpg")
    failed, status, took = talk(sandbox, scenario)
    assert failed == (500, {"error": "internal server error", "key": "api_error_internal"})
    assert sandbox.stats().uploads == 0
    assert status == 200 and took >= 0.3


def test_bad_requests_get_the_api_error_keys(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario(client: Api) -> list[tuple[int, str | None]]:
        order_id = await client.upload(photo)
        indoor_only = await client.selection("space-ie-indoor", ["Add Screen to TV"])
        no_image = aiohttp.FormData({"service_name": api.SERVICE})
        answers = [
            await client.call("POST", api.UPLOAD_PATH, data=no_image),
            await client.call("POST", api.UPLOAD_PATH, data=_form(photo, "service-nope")),
            await client.call("GET", api.SPACES_PATH, params={"service_name": "service-nope"}),
            await client.call(
                "GET", api.ITEMS_PATH, params={"service_name": api.SERVICE, "space_name": "x"}
            ),
            await client.submit("no-such-order"),
            await client.call("POST", api.SUBMIT_PATH, data=b"{not json"),
            await client.call("POST", api.SUBMIT_PATH, json={"order_id": order_id}),
            await client.submit(order_id, space="space-bedroom"),
            await client.submit(order_id, space="space-ie-outdoor", selected=indoor_only),
            await client.call("GET", api.ORDER_PATH.format(order_id="no-such-order")),
        ]
        return [(status, body.get("key")) for status, body in answers]

    assert talk(sandbox, scenario) == [
        (400, "api_error_no_such_file"),
        (400, "api_error_invalid_service"),
        (400, "api_error_invalid_service"),
        (400, "api_error_invalid_space"),
        (404, "api_error_order_not_found"),
        (400, "api_error_invalid_request"),
        (400, "api_error_invalid_request"),
        (422, "api_error_invalid_space"),
        (422, "api_error_invalid_widget"),
        (404, "api_error_order_not_found"),
    ]
    assert sandbox.stats().orders_charged == 0


def _raw_form(boundary: str, parts: list[tuple[str, bytes]], preamble: bytes = b"") -> bytes:
    body = preamble
    for disposition, value in parts:
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


JPEG = b"\xff\xd8\xff\xe0 a small photo \r\n--not-the-boundary \xff\xd9"
SERVICE_PART = ('form-data; name="service_name"', api.SERVICE.encode())
IMAGE_PART = ('form-data; name="image"; filename="room.jpg"', JPEG)


@pytest.mark.parametrize(
    ("content_type", "body", "key"),
    [
        ("multipart/form-data; boundary=b1", _raw_form("b1", [SERVICE_PART, IMAGE_PART]), None),
        ('multipart/form-data; boundary="b 2"', _raw_form("b 2", [IMAGE_PART, SERVICE_PART]), None),
        (
            "multipart/form-data; boundary=b3",
            _raw_form("b3", [SERVICE_PART, IMAGE_PART], preamble=b"ignored\r\n"),
            None,
        ),
        (
            "multipart/form-data; boundary=b4",
            _raw_form("b4", [SERVICE_PART]),
            "api_error_no_such_file",
        ),
        (
            "multipart/form-data; boundary=b5",
            _raw_form("b5", [IMAGE_PART])[:-10],
            "api_error_no_such_file",
        ),
        (
            "multipart/form-data; boundary=b6",
            _raw_form("b6", [SERVICE_PART, ("form-data; name*=utf-8''image", JPEG)]),
            "api_error_no_such_file",
        ),
        (
            "multipart/form-data",
            _raw_form("b7", [SERVICE_PART, IMAGE_PART]),
            "api_error_no_such_file",
        ),
        (
            "multipart/form-data; boundary=b8",
            _raw_form("b8", [IMAGE_PART]),
            "api_error_invalid_service",
        ),
    ],
    ids=["plain", "quoted", "preamble", "no-image", "cut", "rfc2231", "no-boundary", "no-service"],
)
def test_a_small_upload_is_split_in_memory_as_a_server_would(
    sandbox: Sandbox, content_type: str, body: bytes, key: str | None
) -> None:
    """Small uploads skip aiohttp's multipart reader: the split must still be right."""

    async def scenario(client: Api) -> tuple[int, Any, bytes | None]:
        headers = {"Content-Type": content_type}
        status, answer = await client.call("POST", api.UPLOAD_PATH, data=body, headers=headers)
        if status != 200:
            return status, answer, None
        before = api.ORDER_PATH.format(order_id=answer["order_id"])
        assert (await client.submit(answer["order_id"]))[0] == 200
        _, details = await client.call("GET", before)
        async with client.session.get(details["before_image_src"]) as stored:
            return status, answer, await stored.read()

    status, answer, stored = talk(sandbox, scenario)
    if key is None:
        assert status == 200, answer
        assert stored == JPEG  # exactly the image part, CRLFs inside it included
    else:
        assert (status, answer["key"]) == (400, key)


def test_a_photo_over_the_small_limit_is_read_by_aiohttps_reader_and_stored_whole(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """2 MiB goes the streamed way: the client's own framing, read by an independent parser."""
    photo = tmp_path / "big.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2 * 1024 * 1024) + b"\xff\xd9")

    async def scenario(client: Api) -> bytes:
        async with ApiClient(sandbox.url, sandbox.api_key) as ours:
            order_id = await ours.upload(photo)
        assert (await client.submit(order_id))[0] == 200
        _, details = await client.call("GET", api.ORDER_PATH.format(order_id=order_id))
        async with client.session.get(details["before_image_src"]) as stored:
            return await stored.read()

    assert talk(sandbox, scenario) == photo.read_bytes()


def test_an_upload_over_50_mb_is_streamed_and_rejected(sandbox: Sandbox, tmp_path: Path) -> None:
    big = tmp_path / "huge.jpg"
    with big.open("wb") as sparse:
        sparse.truncate(api.MAX_PHOTO_BYTES + 1)  # a hole on disk, nothing in memory

    async def scenario(client: Api) -> tuple[int, Any]:
        return await client.call("POST", api.UPLOAD_PATH, data=_form(big, api.SERVICE))

    tracemalloc.start()
    try:
        answer = talk(sandbox, scenario)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer == (400, {"error": "image larger than 50 MB", "key": "api_error_image_too_large"})
    assert peak < 10 * 1024 * 1024  # both ends (same process) stream the photo
    assert sandbox.stats().uploads == 0


def test_stats_and_faults_are_reachable_over_http_without_a_key(sandbox: Sandbox) -> None:
    async def scenario(client: Api) -> tuple[tuple[int, Any], tuple[int, Any], tuple[int, Any]]:
        steered = await client.call("POST", "/_sandbox/faults", json={"error_rate": 1, "seed": 4})
        refused = await client.call("POST", "/_sandbox/faults", json={"eror_rate": 1})
        await client.call("GET", api.SPACES_PATH, params={"service_name": api.SERVICE})
        return steered, refused, await client.call("GET", "/_sandbox/stats")

    steered, refused, (status, stats) = talk(sandbox, scenario, key="")
    assert steered[0] == 200 and steered[1]["error_rate"] == 1
    assert refused[0] == 400 and "eror_rate" in refused[1]["error"]
    assert status == 200
    assert stats["requests"][f"GET {api.SPACES_PATH}"] == 1
    assert set(stats) == {
        "charges",
        "orders_charged",
        "order_posts",
        "uploads",
        "rate_limited",
        "downloads",
        "requests",
        "held",
        "holding",
        "process_posts",
        "processes_charged",
        "v3_orders",
        "upscale_posts",
        "upscales",
        "webhooks",
        "post_times",
    }


def test_stopping_removes_its_files_and_the_key_stays_out_of_reprs(
    photo_factory: PhotoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))  # this test's files only
    config = SandboxConfig(api_key="canary-key-0123", photo_memory_bytes=0)  # photos on disk
    with SandboxThread(config) as sandbox:
        talk(sandbox, lambda client: client.upload(photo_factory(tmp_path, "room.jpg")))
        assert list(temp_root.glob("aihd-sandbox-*/photos/*"))
        assert "canary-key-0123" not in repr(sandbox) + repr(config)
    assert list(temp_root.iterdir()) == []


def test_run_forever_prints_where_it_is_and_stops_cleanly_on_sigterm() -> None:
    code = (
        "from pipeline.sandbox import SandboxConfig, run_forever;"
        "run_forever(SandboxConfig(api_key='k-123'))"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]
        url = lines[0].rsplit(" ", 1)[1].strip()
        stats = json.loads(_get(url + "/_sandbox/stats"))
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0, server.stderr.read() if server.stderr else ""
    finally:
        server.kill()
        server.communicate()
    assert lines[0].startswith("aihd sandbox (local emulator of the AI HomeDesign API, not the")
    assert lines[1] == "API key: k-123\n"
    assert lines[2] == f"export AIHD_BASE_URL={url} AIHD_API_KEY=k-123\n"
    assert stats["orders_charged"] == 0


def _get(url: str) -> str:
    async def main() -> str:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return await response.text()

    return asyncio.run(main())
