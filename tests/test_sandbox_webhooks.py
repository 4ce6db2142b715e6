"""The emulator's webhooks and v1 upscale, over real HTTP to a real listener: the documented
shapes (v1 2.6, 2.7; v3 section 7), and the switches tests use (duplicates, retries on a
non-2xx, out-of-order delivery, several receivers)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from pipeline import api
from pipeline.sandbox import Sandbox, Webhooks
from tests.webhook_helpers import Listener, listening

V1_KEYS = {"order_id", "image", "service_name", "user_id"}
IMAGE_KEYS = {
    "id", "before_src", "after_src", "regenerated", "style", "color", "space", "sky_style",
    "shadow_removal", "material", "created_at",
}  # fmt: skip


async def _order(sandbox: Sandbox, photo: Path, session: aiohttp.ClientSession) -> str:
    """Upload and submit one photo (a charge): its order id."""
    headers = {api.API_KEY_HEADER: sandbox.api_key}
    form = aiohttp.FormData()
    form.add_field("service_name", api.SERVICE)
    form.add_field("image", photo.read_bytes(), filename=photo.name)
    async with session.post(sandbox.url + api.UPLOAD_PATH, data=form, headers=headers) as up:
        order_id = str((await up.json())["order_id"])
    body = {"order_id": order_id, "space_name": "space-ie-indoor", "selected_widgets": []}
    async with session.post(sandbox.url + api.SUBMIT_PATH, json=body, headers=headers) as sent:
        assert sent.status == 200
    return order_id


async def _call(sandbox: Sandbox, method: str, path: str) -> tuple[int, Any]:
    headers = {api.API_KEY_HEADER: sandbox.api_key}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, sandbox.url + path, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


def _orders(sandbox: Sandbox, photos: list[Path]) -> list[str]:
    async def go() -> list[str]:
        async with aiohttp.ClientSession() as session:
            return [await _order(sandbox, photo, session) for photo in photos]

    return asyncio.run(go())


def test_a_finished_order_sends_the_documented_v1_webhook_with_the_account_user(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Each charged order's generated image is announced once, in the shape of 2.6."""
    with listening() as listener:
        sandbox = make_sandbox(webhooks=Webhooks(urls=(listener.url + "/hooks/s",)))
        (order_id,) = _orders(sandbox, [photo_factory(tmp_path, "a.jpg")])
        (body,) = listener.wait_for(1)
        time.sleep(0.3)  # nothing more comes
        assert listener.bodies() == [body]
    assert set(body) == V1_KEYS and set(body["image"]) == IMAGE_KEYS
    assert body["order_id"] == order_id
    status, details = asyncio.run(_call(sandbox, "GET", api.ORDER_PATH.format(order_id=order_id)))
    assert status == 200
    assert body["user_id"] == details["user_id"]
    assert body["image"]["id"] == details["generated_images"][0]["id"]
    assert listener.heard[0].path == "/hooks/s" and listener.heard[0].method == "POST"


def test_duplicates_and_retries_after_a_non_2xx_are_sent_as_asked(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """duplicates=1 sends each webhook twice; a 500 answer is tried again, up to retries."""
    with listening() as listener:
        listener.statuses = [500, 503]
        hooks = Webhooks(urls=(listener.url,), duplicates=1, retries=3, retry_seconds=0.05)
        sandbox = make_sandbox(webhooks=hooks)
        _orders(sandbox, [photo_factory(tmp_path, "a.jpg")])
        bodies = listener.wait_for(4)  # 2 copies, the first two answers refused
        time.sleep(0.3)
        assert len(listener.bodies()) == 4
    assert all(b == bodies[0] for b in bodies)
    assert sandbox.stats().webhooks == {
        "sent": 4,
        "answered_2xx": 2,
        "refused": 2,
        "unanswered": 0,
    }


def test_several_receivers_take_turns_or_all_receive_each_webhook(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    with listening() as one, listening() as two:
        sandbox = make_sandbox(webhooks=Webhooks(urls=(one.url, two.url)))
        photos = [photo_factory(tmp_path, f"{n}.jpg") for n in range(4)]
        _orders(sandbox, photos)
        _wait_total([one, two], 4)
        assert len(one.bodies()) == len(two.bodies()) == 2
        sandbox.set_webhooks(Webhooks(urls=(one.url, two.url), spread="every"))
        _orders(sandbox, [photo_factory(tmp_path, "e.jpg")])
        _wait_total([one, two], 6)
        assert one.bodies()[-1] == two.bodies()[-1]


def test_out_of_order_delivery_lets_a_later_order_land_first(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """With a seed whose first draw is well above its second, the first order's webhook is
    held longer than the second's: they arrive the other way round, certainly."""
    spread = 2.0
    seed = next(s for s in range(1000) if _draws(s, spread)[0] - _draws(s, spread)[1] > 1.2)
    with listening() as listener:
        hooks = Webhooks(urls=(listener.url,), out_of_order_seconds=spread, seed=seed)
        sandbox = make_sandbox(webhooks=hooks, time_scale=0.0)
        first, second = _orders(
            sandbox, [photo_factory(tmp_path, "1.jpg"), photo_factory(tmp_path, "2.jpg")]
        )
        bodies = listener.wait_for(2)
    assert [b["order_id"] for b in bodies] == [second, first]


def test_v3_process_completed_is_sent_when_a_process_ends(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """v3 section 7: {event, process_id, order_id, tool, status, final_assets}."""
    with listening() as listener:
        sandbox = make_sandbox(webhooks=Webhooks(urls=(listener.url,)))
        order_id, process_id = asyncio.run(_v3_process(sandbox, photo_factory(tmp_path, "a.jpg")))
        (body,) = listener.wait_for(1)
    assert set(body) == {"event", "process_id", "order_id", "tool", "status", "final_assets"}
    assert body["event"] == "process.completed" and body["status"] == "done"
    assert (body["order_id"], body["process_id"]) == (order_id, process_id)
    assert body["final_assets"] and body["final_assets"][0]["temp_src"].startswith(sandbox.url)


def test_upscale_answers_processing_and_sends_its_result_by_webhook_only(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """2.7: the POST answers {status: processing}; the link comes by webhook; the photo there
    is twice the size of the enhanced result. An unknown generated image is a 404."""
    with listening() as listener:
        sandbox = make_sandbox(webhooks=Webhooks(urls=(listener.url,)))
        (order_id,) = _orders(sandbox, [photo_factory(tmp_path, "a.jpg", size=(40, 30))])
        (done,) = listener.wait_for(1)
        generated = done["image"]["id"]
        path = api.UPSCALE_PATH.format(generated_image_id=generated)
        assert asyncio.run(_call(sandbox, "POST", path)) == (200, {"status": "processing"})
        upscaled = listener.wait_for(2)[1]
    assert upscaled == {
        "generated_image_id": generated,
        "upscaled_image_src": upscaled["upscaled_image_src"],
        "user_id": done["user_id"],
    }
    _, details = asyncio.run(_call(sandbox, "GET", api.ORDER_PATH.format(order_id=order_id)))
    assert "upscaled_image_src" not in details["generated_images"][0]  # the webhook only
    size = asyncio.run(_image_size(upscaled["upscaled_image_src"]))
    assert size == (80, 60)
    missing = api.UPSCALE_PATH.format(generated_image_id="nope")
    assert asyncio.run(_call(sandbox, "POST", missing))[0] == 404
    assert sandbox.stats().upscales == {generated: 1}
    assert sandbox.stats().upscale_posts == 2


async def _v3_process(sandbox: Sandbox, photo: Path) -> tuple[str, str]:
    """One photo through the v3 client: its order id and process id."""
    from pipeline.api.v3 import V3Client
    from pipeline.api.v3_slugs import build_spec

    spec = build_spec("image-enhancement", project="1 Test St")
    async with V3Client(sandbox.url, sandbox.api_key) as client:
        order_id = await client.send_photo(photo, spec)
        return order_id, (await client.spend(order_id, spec)).image_id


def _wait_total(listeners: list[Listener], count: int) -> None:
    deadline = time.monotonic() + 20
    while sum(len(one.bodies()) for one in listeners) < count:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)
    assert sum(len(one.bodies()) for one in listeners) == count


def _draws(seed: int, spread: float) -> tuple[float, float]:
    rng = random.Random(seed)
    return rng.uniform(0, spread), rng.uniform(0, spread)


async def _image_size(url: str) -> tuple[int, int]:
    import io

    from PIL import Image

    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        data = await answer.read()
    with Image.open(io.BytesIO(data)) as image:
        return image.size
