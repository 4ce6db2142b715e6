"""The local emulator's v3 API over real HTTP: flow, readings of each unknown, window, faults."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from PIL import Image

from pipeline.sandbox import Sandbox

T = TypeVar("T")
PhotoFactory = Callable[..., Path]
MakeSandbox = Callable[..., Sandbox]
RATE_LIMIT_BODY = {"error": "rate-limit exceeded, 10 generates per 10 minutes only"}
IE = "tool-image-enhancement"
IE_SLOT = "tool-image-enhancement-input-image"
AREA = "widget-area-tool-image-enhancement"
INDOOR = "item-indoor-widget-area-tool-image-enhancement"
OPTIONS = "widget-enhancement-options-tool-image-enhancement"
FIREPLACE = "item-add-fire-to-fireplace-widget-enhancement-options-tool-image-enhancement"
INDOOR_WIDGETS = [{"slug": AREA, "item_slugs": [INDOOR]}]


class V3:
    """A bare aiohttp session on the emulator's v3 routes, answering (status, JSON body)."""

    def __init__(self, sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
        self.sandbox, self.session = sandbox, session

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.sandbox.url + path, **kwargs) as response:
            return response.status, await response.json()

    async def data(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        """The answer's data, unwrapped from the envelope if the emulator wraps."""
        status, body = await self.call(method, path, **kwargs)
        assert status == expect, body
        return body["data"] if isinstance(body, dict) and "data" in body else body

    async def project(self, address: str = "12 Elm Street") -> str:
        return str((await self.data("POST", "/v3/project", 201, json={"address": address}))["id"])

    async def post_order(
        self, photos: list[Path], fields: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        form = aiohttp.FormData()
        for name, value in (fields or {}).items():
            for one in value if isinstance(value, list) else [value]:
                form.add_field(name, one)
        for photo in photos:
            form.add_field("asset_file", photo.read_bytes(), filename=photo.name)
        return await self.call("POST", "/v3/order", data=form)

    async def order(self, photo: Path, project_id: str | None = None) -> tuple[str, str]:
        """A new order of one photo: (order id, asset id)."""
        status, body = await self.post_order([photo], {"project_id": project_id or ""})
        assert status == 201, body
        created = body.get("data", body)
        return created["order_id"], created["assets"][0]["id"]

    async def post_process(
        self, order_id: str, asset_id: str, tool: str = IE, **fields: Any
    ) -> tuple[int, Any]:
        body = {
            "order_id": order_id,
            "tool": tool,
            "asset_map": {f"{tool}-input-image": asset_id},
            "widgets": INDOOR_WIDGETS if tool == IE else [],
            **fields,
        }
        return await self.call("POST", "/v3/process", json=body)

    async def process(self, order_id: str, asset_id: str, tool: str = IE, **fields: Any) -> str:
        """A new process's id (from either reading of the answer)."""
        status, body = await self.post_process(order_id, asset_id, tool, **fields)
        assert status == 201, body
        created = body.get("data", body)
        return str(created["process_ids"][0] if "process_ids" in created else created["process_id"])

    async def finished(self, process_id: str) -> Any:
        """The process once done or failed."""
        deadline = time.monotonic() + 20
        while (record := await self.data("GET", f"/v3/process/{process_id}"))["status"] not in (
            "done",
            "failed",
        ):
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.05)
        return record

    async def download(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url) as response:
            return response.status, await response.read()


def talk(sandbox: Sandbox, scenario: Callable[[V3], Awaitable[T]], key: str | None = None) -> T:
    """Run scenario against the emulator with a session that sends the key."""

    async def main() -> T:
        headers = {"x-api-key": sandbox.api_key if key is None else key}
        async with aiohttp.ClientSession(headers=headers) as session:
            return await scenario(V3(sandbox, session))

    return asyncio.run(main())


def test_a_photo_goes_project_order_process_result(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """One photo: project, order (idle), process (charged once), done, a JPEG result to fetch."""
    photo = photo_factory(tmp_path, "a.jpg", size=(96, 64))

    async def scenario(v3: V3) -> tuple[Any, Any, Any, bytes]:
        project_id = await v3.project()
        order_id, asset_id = await v3.order(photo, project_id)
        idle = await v3.data("GET", f"/v3/order/{order_id}")
        process_id = await v3.process(order_id, asset_id)
        done = await v3.finished(process_id)
        order = await v3.data("GET", f"/v3/order/{order_id}")
        status, result = await v3.download(done["final_assets"][0]["temp_src"])
        assert status == 200
        return idle, done, order, result

    idle, done, order, result = talk(sandbox, scenario)
    assert (idle["status"], idle["processes"]) == ("idle", [])
    assert [asset["role"] for asset in idle["assets"]] == ["primary_angle"]
    assert done["status"] == "done"
    (final,) = done["final_assets"]
    assert final["asset_type"] == "image"
    assert {"asset_id", "temp_src", "temp_thumbnail_src", "src"} <= set(final)
    assert order["status"] == "done"
    assert [(entry["id"], entry["tool"]) for entry in order["processes"]] == [(done["id"], IE)]
    assert Image.open(io.BytesIO(result)).size == (96, 64)
    stats = sandbox.stats()
    assert sum(stats.charges.values()) == 1
    assert (stats.process_posts, stats.processes_charged, stats.v3_orders) == (1, 1, 1)
    assert (stats.order_posts, stats.orders_charged) == (0, 0)
