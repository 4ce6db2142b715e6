"""The local emulator's v3 API over real HTTP: flow, readings of each unknown, window, faults."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from PIL import Image, ImageStat

from pipeline.sandbox import Faults, Sandbox, V3Readings
from tests.cli_helpers import aihd

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


def test_the_tools_list_answers_without_a_key(sandbox: Sandbox) -> None:
    """GET /api/tools needs no key and lists, active, the vendor catalog's tools but the two
    the vendor reports not found live, and the docs' furniture restyle in their place."""

    async def scenario(v3: V3) -> tuple[int, Any]:
        return await v3.call("GET", "/api/tools")

    status, body = talk(sandbox, scenario, key="")
    assert status == 200
    assert {tool["slug"] for tool in body["data"]} == {
        IE,
        "tool-day-to-dusk",
        "tool-item-removal",
        "tool-item-removal-mask",
        "tool-virtual-staging",
        "tool-virtual-restaging",
        "tool-interior-design",
        "tool-furniture-restyle",
        "tool-under-construction",
        "tool-wall-change",
        "tool-floor-change",
        "tool-ceiling-change",
        "tool-backsplash-change",
        "tool-darkness",
    }
    assert all(set(tool) == {"id", "name", "slug", "isActive"} for tool in body["data"])
    assert all(tool["isActive"] for tool in body["data"])


@pytest.mark.parametrize("key", ["wrong-key", ""], ids=["wrong", "empty"])
def test_a_bad_key_gets_401_on_every_v3_route(sandbox: Sandbox, key: str) -> None:
    """Every /v3 route refuses a wrong or missing key with v1's 401, and charges nothing."""

    async def scenario(v3: V3) -> list[tuple[int, Any]]:
        return [
            await v3.call("POST", "/v3/project", json={"address": "x"}),
            await v3.call("GET", "/v3/project"),
            await v3.call("GET", "/v3/project/x"),
            await v3.call("POST", "/v3/order", data={"project_id": "x"}),
            await v3.call("GET", "/v3/order/x"),
            await v3.call("POST", "/v3/process", json={}),
            await v3.call("GET", "/v3/process/x"),
        ]

    unauthorized = (401, {"error": "invalid api key", "key": "api_error_unauthorized"})
    assert talk(sandbox, scenario, key=key) == [unauthorized] * 7
    assert sandbox.stats().process_posts == 1
    assert sandbox.stats().charges == {}


def test_a_plan_without_the_service_gets_403_on_v3(make_sandbox: MakeSandbox) -> None:
    """A plan that lacks the API is refused with v1's 403 on /v3 too."""
    sandbox = make_sandbox(plan_allows_service=False)

    async def scenario(v3: V3) -> tuple[int, Any]:
        return await v3.call("GET", "/v3/project", params={"page": 1, "limit": 1})

    assert talk(sandbox, scenario)[0] == 403


def test_projects_are_listed_by_page_searched_and_found_by_id(sandbox: Sandbox) -> None:
    """GET /v3/project pages (limit at most 30), sorts, searches addresses; a bad id is 404."""

    async def scenario(v3: V3) -> dict[str, Any]:
        ids = [await v3.project(f"{n} Elm Street") for n in range(1, 4)]
        ids.append(await v3.project("7 Oak Avenue"))
        return {
            "ids": ids,
            "first": await v3.call("GET", "/v3/project", params={"page": 1, "limit": 3}),
            "second": await v3.call("GET", "/v3/project", params={"page": 2, "limit": 3}),
            "oldest": await v3.data("GET", "/v3/project", params={"sort": "asc", "limit": 1}),
            "oak": await v3.data("GET", "/v3/project", params={"s": "oak"}),
            "one": await v3.data("GET", f"/v3/project/{ids[1]}"),
            "unknown": await v3.call("GET", "/v3/project/nope"),
            "too_many": await v3.call("GET", "/v3/project", params={"limit": 31}),
            "bad_sort": await v3.call("GET", "/v3/project", params={"sort": "sideways"}),
            "no_address": await v3.call("POST", "/v3/project", json={"address": " "}),
        }

    seen = talk(sandbox, scenario)
    ids = seen["ids"]
    status, first = seen["first"]
    assert status == 200 and first["message"] == "ok"
    assert [p["id"] for p in first["data"]] == ids[::-1][:3]  # newest first by default
    assert first["pagination"] == {"page": 1, "limit": 3, "total": 4, "total_pages": 2}
    assert [p["id"] for p in seen["second"][1]["data"]] == [ids[0]]
    assert [p["id"] for p in seen["oldest"]] == [ids[0]]
    assert [p["address"] for p in seen["oak"]] == ["7 Oak Avenue"]
    assert seen["one"]["address"] == "2 Elm Street"
    assert set(seen["one"]) == {
        "id",
        "address",
        "cover_src",
        "input_count",
        "result_count",
        "bookmarked_count",
        "default",
        "updated_at",
    }
    assert seen["unknown"][0] == 404
    assert seen["too_many"][0] == seen["bad_sort"][0] == seen["no_address"][0] == 400


def test_a_deleted_project_is_unknown_to_every_route_and_its_search(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """DELETE /_sandbox/v3/project/{id} (the switch a test sets; Sandbox.delete_v3_project
    does the same): the id is 404 to GET and to POST /v3/order, and a search finds no more."""
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> dict[str, Any]:
        gone = await v3.project("12 Elm Street")
        return {
            "deleted": await v3.call("DELETE", f"/_sandbox/v3/project/{gone}"),
            "again": await v3.call("DELETE", f"/_sandbox/v3/project/{gone}"),
            "read": await v3.call("GET", f"/v3/project/{gone}"),
            "order": await v3.post_order([photo], {"project_id": gone}),
            "search": await v3.data("GET", "/v3/project", params={"s": "elm"}),
        }

    seen = talk(sandbox, scenario)
    assert seen["deleted"][0] == 200 and seen["again"][0] == 404
    assert seen["read"][0] == 404
    assert seen["order"][0] == 404 and seen["order"][1]["key"] == "api_error_project_not_found"
    assert seen["search"] == []
    assert not sandbox.delete_v3_project("never-made")


def test_the_bare_reading_answers_without_the_data_envelope(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """With envelope=bare, objects come as they are and lists as plain JSON arrays."""
    sandbox = make_sandbox(v3=V3Readings(envelope="bare"))
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> list[Any]:
        _, project = await v3.call("POST", "/v3/project", json={"address": "1 Elm"})
        _, listed = await v3.call("GET", "/v3/project")
        _, order = await v3.post_order([photo], {"project_id": project["id"]})
        _, process = await v3.post_process(order["order_id"], order["assets"][0]["id"])
        _, details = await v3.call("GET", f"/v3/order/{order['order_id']}")
        return [project, listed, order, process, details]

    project, listed, order, process, details = talk(sandbox, scenario)
    assert project["address"] == "1 Elm" and "data" not in project
    assert isinstance(listed, list) and [p["id"] for p in listed] == [project["id"]]
    assert set(order) == {"order_id", "assets"}
    assert set(process) == {"process_ids"}
    assert details["id"] == order["order_id"]


def test_the_wrapped_reading_is_the_default(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """By default every success is {"data": ..., "message": "ok"}, lists with pagination."""
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> list[Any]:
        _, project = await v3.call("POST", "/v3/project", json={"address": "1 Elm"})
        _, listed = await v3.call("GET", "/v3/project")
        _, order = await v3.post_order([photo], {"project_id": project["data"]["id"]})
        created = order["data"]
        _, process = await v3.post_process(created["order_id"], created["assets"][0]["id"])
        return [project, listed, order, process]

    for body in talk(sandbox, scenario):
        assert body["message"] == "ok" and "data" in body
    assert "pagination" in talk(sandbox, lambda v3: v3.call("GET", "/v3/project"))[1]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("process_ids", lambda pid: {"process_ids": [pid]}),
        ("process_id", lambda pid: {"process_id": pid}),
    ],
    ids=["list", "single"],
)
def test_the_process_id_comes_as_a_list_or_a_string_as_read(
    make_sandbox: MakeSandbox,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    field: str,
    expected: Callable[[str], dict[str, Any]],
) -> None:
    """POST /v3/process answers {"process_ids": [id]} or {"process_id": id}, as the reading says."""
    sandbox = make_sandbox(v3=V3Readings(process_id_field=field))  # type: ignore[arg-type]
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[Any, Any]:
        order_id, asset_id = await v3.order(photo)
        created = await v3.data(
            "POST",
            "/v3/process",
            201,
            json={
                "order_id": order_id,
                "tool": IE,
                "asset_map": {IE_SLOT: asset_id},
                "widgets": INDOOR_WIDGETS,
            },
        )
        order = await v3.data("GET", f"/v3/order/{order_id}")
        return created, order

    created, order = talk(sandbox, scenario)
    (entry,) = order["processes"]
    assert created == expected(entry["id"])
    assert isinstance(entry["id"], str) and entry["id"]


@pytest.mark.parametrize("accepted", ["asset_role", "asset_roles"])
def test_the_server_takes_one_role_field_name_and_refuses_the_other(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, accepted: str
) -> None:
    """The role field the reading accepts sets roles; the other name is a 400 wrong asset role."""
    sandbox = make_sandbox(v3=V3Readings(role_field=accepted))  # type: ignore[arg-type]
    other = "asset_roles" if accepted == "asset_role" else "asset_role"
    photos = [photo_factory(tmp_path, "a.jpg"), photo_factory(tmp_path, "b.jpg")]

    async def scenario(v3: V3) -> tuple[Any, tuple[int, Any]]:
        roles = ["primary_angle", "secondary_angle"]
        _, created = await v3.post_order(photos, {accepted: roles})
        order = await v3.data("GET", f"/v3/order/{created['data']['order_id']}")
        return order, await v3.post_order(photos[:1], {other: "primary_angle"})

    order, refused = talk(sandbox, scenario)
    assert [asset["role"] for asset in order["assets"]] == ["primary_angle", "secondary_angle"]
    assert refused == (400, {"error": "wrong asset role", "key": "api_error_wrong_asset_role"})
    assert sandbox.stats().v3_orders == 1


@pytest.mark.parametrize("accepted", ["asset_role", "asset_roles"])
def test_a_file_without_a_role_is_the_primary_angle(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, accepted: str
) -> None:
    """Under either role reading, a file sent without a role field is the order's primary."""
    sandbox = make_sandbox(v3=V3Readings(role_field=accepted))  # type: ignore[arg-type]
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> Any:
        order_id, _ = await v3.order(photo)
        return await v3.data("GET", f"/v3/order/{order_id}")

    assert [asset["role"] for asset in talk(sandbox, scenario)["assets"]] == ["primary_angle"]


@pytest.mark.parametrize(
    "roles",
    [[], ["primary_angle", "primary_angle"], ["mask", "mask"], ["primary_angle", "front"]],
    ids=["two-without-roles", "two-primaries", "no-primary", "unknown-role"],
)
def test_an_order_needs_exactly_one_primary_asset(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, roles: list[str]
) -> None:
    """Two files both primary (or none primary, or an unknown role) are refused with a 400."""
    photos = [photo_factory(tmp_path, "a.jpg"), photo_factory(tmp_path, "b.jpg")]

    async def scenario(v3: V3) -> tuple[int, Any]:
        return await v3.post_order(photos, {"asset_role": roles} if roles else {})

    status, body = talk(sandbox, scenario)
    assert status == 400, body
    assert sandbox.stats().v3_orders == 0


def test_an_upload_without_a_file_or_with_a_non_image_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """POST /v3/order without asset_file, or with bytes that are no image, is a 400."""
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")

    async def scenario(v3: V3) -> list[tuple[int, Any]]:
        return [await v3.post_order([], {"project_id": ""}), await v3.post_order([text])]

    (empty, body), (not_image, why) = talk(sandbox, scenario)
    assert (empty, not_image) == (400, 400), (body, why)
    assert "notes.jpg" in why["error"]
    assert sandbox.stats().v3_orders == 0


def test_a_required_project_id_refuses_an_order_without_one(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """With project_id=required, an order without project_id is a 400; an unknown one a 404."""
    sandbox = make_sandbox(v3=V3Readings(project_id="required"))
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> list[tuple[int, Any]]:
        project_id = await v3.project()
        return [
            await v3.post_order([photo]),
            await v3.post_order([photo], {"project_id": "nope"}),
            await v3.post_order([photo], {"project_id": project_id}),
        ]

    assert [status for status, _ in talk(sandbox, scenario)] == [400, 404, 201]


def test_an_optional_project_id_puts_the_order_in_the_default_project(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """By default an order without project_id goes to the account's one default project."""
    photos = [photo_factory(tmp_path, "a.jpg"), photo_factory(tmp_path, "b.jpg")]

    async def scenario(v3: V3) -> tuple[list[str], Any]:
        orders = [await v3.order(photo) for photo in photos]
        projects = [
            (await v3.data("GET", f"/v3/order/{order_id}"))["project_id"] for order_id, _ in orders
        ]
        return projects, await v3.data("GET", "/v3/project")

    projects, listed = talk(sandbox, scenario)
    (default,) = listed
    assert projects == [default["id"]] * 2
    assert default["default"] is True and default["input_count"] == 2


@pytest.mark.parametrize("id_field", ["id", "process_id"])
@pytest.mark.parametrize("with_tool", [True, False], ids=["tool", "no-tool"])
def test_order_process_entries_carry_the_id_and_tool_fields_as_read(
    make_sandbox: MakeSandbox,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    id_field: str,
    with_tool: bool,
) -> None:
    """GET /v3/order's processes[] name the id "id" or "process_id", with or without "tool"."""
    readings = V3Readings(process_entry_id=id_field, process_entry_tool=with_tool)  # type: ignore[arg-type]
    sandbox = make_sandbox(v3=readings)
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[str, Any]:
        order_id, asset_id = await v3.order(photo)
        process_id = await v3.process(order_id, asset_id)
        return process_id, await v3.data("GET", f"/v3/order/{order_id}")

    process_id, order = talk(sandbox, scenario)
    (entry,) = order["processes"]
    expected = {id_field, "status", "created_at"} | ({"tool"} if with_tool else set())
    assert set(entry) == expected
    assert entry[id_field] == process_id
    assert entry.get("tool", IE) == IE


def test_results_can_come_without_a_lasting_src(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """With result_src off, final_assets carry temp_src and temp_thumbnail_src only."""
    sandbox = make_sandbox(v3=V3Readings(result_src=False))
    photo = photo_factory(tmp_path, "a.jpg", size=(640, 480))

    async def scenario(v3: V3) -> tuple[Any, tuple[int, bytes]]:
        order_id, asset_id = await v3.order(photo)
        done = await v3.finished(await v3.process(order_id, asset_id))
        return done, await v3.download(done["final_assets"][0]["temp_thumbnail_src"])

    done, (status, thumbnail) = talk(sandbox, scenario)
    (final,) = done["final_assets"]
    assert set(final) == {"asset_id", "asset_type", "temp_src", "temp_thumbnail_src"}
    assert status == 200
    assert max(Image.open(io.BytesIO(thumbnail)).size) == 256


def test_a_temp_link_expires_and_a_new_get_gives_a_fresh_one(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A temp_src older than temp_link_seconds is a 403; re-GET the process for a working one."""
    sandbox = make_sandbox(v3=V3Readings(temp_link_seconds=0.5))
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[str, int, str, int, int]:
        order_id, asset_id = await v3.order(photo)
        process_id = await v3.process(order_id, asset_id)
        old = (await v3.finished(process_id))["final_assets"][0]["temp_src"]
        await asyncio.sleep(0.6)  # past the link's lifetime for certain
        expired, _ = await v3.download(old)
        sandbox.set_v3_readings(V3Readings(temp_link_seconds=600))
        record = await v3.data("GET", f"/v3/process/{process_id}")
        fresh = record["final_assets"][0]["temp_src"]
        forged, _ = await v3.download(fresh.replace("sig=", "sig=0"))
        return old, expired, fresh, (await v3.download(fresh))[0], forged

    old, expired, fresh, fresh_status, forged = talk(sandbox, scenario)
    assert expired == 403
    assert fresh != old and fresh_status == 200
    assert forged == 403


@pytest.mark.parametrize(("active", "done"), [("active", "done"), ("processing", "completed")])
def test_order_statuses_follow_the_reading(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, active: str, done: str
) -> None:
    """An order is idle, then active (or processing) while its process runs, then done/completed."""
    readings = V3Readings(active_status=active, done_status=done)  # type: ignore[arg-type]
    slow = make_sandbox(v3=readings, eta_seconds=30, time_scale=1.0)  # 30 s: caught running
    fast = make_sandbox(v3=readings)
    photo = photo_factory(tmp_path, "a.jpg")

    async def running(v3: V3) -> tuple[str, str, str]:
        order_id, asset_id = await v3.order(photo)
        idle = (await v3.data("GET", f"/v3/order/{order_id}"))["status"]
        process_id = await v3.process(order_id, asset_id)
        order = await v3.data("GET", f"/v3/order/{order_id}")
        process = await v3.data("GET", f"/v3/process/{process_id}")
        return idle, order["status"], process["status"]

    async def finished(v3: V3) -> str:
        order_id, asset_id = await v3.order(photo)
        await v3.finished(await v3.process(order_id, asset_id))
        return str((await v3.data("GET", f"/v3/order/{order_id}"))["status"])

    assert talk(slow, running) == ("idle", active, "pending")
    assert talk(fast, finished) == done


def _v1_order(sandbox: Sandbox, photo: Path) -> Callable[[V3], Awaitable[int]]:
    """A scenario that uploads a photo on v1 and posts its order: the order POST's status."""

    async def scenario(v3: V3) -> int:
        form = aiohttp.FormData()
        form.add_field("service_name", "service-image-enhancement")
        form.add_field("image", photo.read_bytes(), filename=photo.name)
        _, upload = await v3.call("POST", "/v1/order/image", data=form)
        body = {"order_id": upload["order_id"], "space_name": "space-ie-indoor"}
        status, _ = await v3.call("POST", "/v1/order", json={**body, "selected_widgets": []})
        return status

    return scenario


@pytest.mark.parametrize("eleventh", ["v1", "v3"])
def test_v1_orders_and_v3_processes_share_the_accounts_window(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, eleventh: str
) -> None:
    """6 v1 orders and 4 v3 processes fill a 10-window: the 11th of either is a 429."""
    sandbox = make_sandbox(orders_per_window=10)
    photos = [photo_factory(tmp_path, f"{n}.jpg") for n in range(11)]

    async def scenario(v3: V3) -> tuple[list[int], tuple[int, Any]]:
        statuses = [await _v1_order(sandbox, photo)(v3) for photo in photos[:6]]
        for photo in photos[6:10]:
            order_id, asset_id = await v3.order(photo)
            statuses.append((await v3.post_process(order_id, asset_id))[0])
        if eleventh == "v1":
            return statuses, (await _v1_order(sandbox, photos[10])(v3), RATE_LIMIT_BODY)
        order_id, asset_id = await v3.order(photos[10])
        return statuses, await v3.post_process(order_id, asset_id)

    statuses, last = talk(sandbox, scenario)
    assert statuses == [200] * 6 + [201] * 4
    assert last == (429, RATE_LIMIT_BODY)
    stats = sandbox.stats()
    assert sum(stats.charges.values()) == 10
    assert (stats.orders_charged, stats.processes_charged, stats.rate_limited) == (6, 4, 1)


def test_each_process_is_one_charge_even_on_the_same_order(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Every accepted process is charged, a second one on the same order too; uploads are free."""
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> None:
        order_id, asset_id = await v3.order(photo)
        await v3.order(photo_factory(tmp_path, "b.jpg"))
        await v3.process(order_id, asset_id)
        await v3.process(order_id, asset_id, "tool-day-to-dusk")

    talk(sandbox, scenario)
    stats = sandbox.stats()
    assert list(stats.charges.values()) == [2]
    assert (stats.v3_orders, stats.process_posts, stats.processes_charged) == (2, 2, 2)


def test_a_window_that_counts_orders_refuses_the_eleventh_order(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """With window_counts=orders, POST /v3/order takes the window's places, processes do not."""
    sandbox = make_sandbox(orders_per_window=10, v3=V3Readings(window_counts="orders"))
    photos = [photo_factory(tmp_path, f"{n}.jpg") for n in range(11)]

    async def scenario(v3: V3) -> tuple[tuple[int, Any], list[int]]:
        orders = [await v3.order(photo) for photo in photos[:10]]
        refused = await v3.post_order(photos[10:])
        processes = [(await v3.post_process(*order))[0] for order in orders]
        processes.append((await v3.post_process(*orders[0]))[0])
        return refused, processes

    refused, processes = talk(sandbox, scenario)
    assert refused == (429, RATE_LIMIT_BODY)
    assert processes == [201] * 11
    stats = sandbox.stats()
    assert (stats.v3_orders, stats.rate_limited, sum(stats.charges.values())) == (10, 1, 11)


@pytest.mark.parametrize("counts", ["processes", "orders"])
def test_an_in_flight_window_refuses_while_as_many_processes_run(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, counts: str
) -> None:
    """With window_in_flight, 2 running processes refuse a 3rd in a 2-window whose time passed."""
    readings = V3Readings(window_counts=counts, window_in_flight=True)  # type: ignore[arg-type]
    # Places in the window last 1 ms, processes 30 s: only the in-flight rule can refuse.
    sandbox = make_sandbox(
        orders_per_window=2, window_seconds=0.001, eta_seconds=30, time_scale=1.0, v3=readings
    )
    photos = [photo_factory(tmp_path, f"{n}.jpg") for n in range(3)]

    async def scenario(v3: V3) -> tuple[int, Any]:
        for photo in photos[:2]:
            await v3.process(*await v3.order(photo))
            await asyncio.sleep(0.01)  # the window's place is gone for certain
        if counts == "orders":
            return await v3.post_order(photos[2:])
        order = await v3.order(photos[2])
        return await v3.post_process(*order)

    assert talk(sandbox, scenario) == (429, RATE_LIMIT_BODY)
    assert sandbox.stats().rate_limited == 1


def _body(order_id: str, asset_id: str, **changes: Any) -> dict[str, Any]:
    body = {
        "order_id": order_id,
        "tool": IE,
        "asset_map": {IE_SLOT: asset_id},
        "widgets": INDOOR_WIDGETS,
    }
    return {**body, **changes}


BAD_PROCESSES: dict[str, tuple[Callable[[str, str], Any], int, str]] = {
    "unknown-tool": (
        lambda o, a: _body(
            o, a, tool="tool-sky-change", asset_map={"tool-sky-change-input-image": a}
        ),
        500,
        "tool repository: tool not found",
    ),
    "slot-mismatch": (lambda o, a: _body(o, a, asset_map={"input-image": a}), 422, "slot"),
    "unknown-widget": (
        lambda o, a: _body(o, a, widgets=[*INDOOR_WIDGETS, {"slug": "widget-x", "item_slugs": []}]),
        422,
        "widget-x",
    ),
    "item-not-in-widget": (
        lambda o, a: _body(o, a, widgets=[{"slug": AREA, "item_slugs": [FIREPLACE]}]),
        422,
        "not in widget",
    ),
    "missing-required": (
        lambda o, a: _body(o, a, widgets=[{"slug": OPTIONS, "item_slugs": [FIREPLACE]}]),
        422,
        "required",
    ),
    "two-items-in-single": (
        lambda o, a: _body(
            o,
            a,
            widgets=[{"slug": AREA, "item_slugs": [INDOOR, INDOOR.replace("indoor", "outdoor")]}],
        ),
        422,
        "one item",
    ),
    "unknown-order": (lambda o, a: _body("nope", a), 404, "order not found"),
    "unknown-asset": (lambda o, a: _body(o, "nope"), 404, "asset not found"),
    "bad-body": (lambda o, a: {"order_id": o}, 400, "asset_map"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROCESSES))
def test_a_bad_process_is_refused_as_the_docs_say_and_not_charged(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, case: str
) -> None:
    """Unknown tool 500; slot, widget or item mismatch 422; unknown order/asset 404; no charge."""
    make_body, expected_status, expected_text = BAD_PROCESSES[case]
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[int, Any]:
        order_id, asset_id = await v3.order(photo)
        return await v3.call("POST", "/v3/process", json=make_body(order_id, asset_id))

    status, body = talk(sandbox, scenario)
    assert status == expected_status, body
    assert expected_text in body["error"] and body["key"].startswith("api_error_")
    stats = sandbox.stats()
    assert (stats.process_posts, stats.charges) == (1, {})


def test_each_tool_takes_its_own_widgets(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Staging needs space and style, dusk and removal take none required; each is accepted."""
    photo = photo_factory(tmp_path, "a.jpg")
    staging = "tool-virtual-staging"
    space, style = f"widget-space-{staging}", f"widget-style-{staging}"
    dusk_options = "widget-day-to-dusk-options-tool-day-to-dusk"

    async def scenario(v3: V3) -> list[int]:
        order_id, asset_id = await v3.order(photo)
        staged = [
            {"slug": space, "item_slugs": [f"item-living-room-{space}"]},
            {"slug": style, "item_slugs": [f"item-scandinavian-{style}"]},
        ]
        dusk = [{"slug": dusk_options, "item_slugs": [f"item-lawn-touch-up-{dusk_options}"]}]
        return [
            (await v3.post_process(order_id, asset_id, staging))[0],
            (await v3.post_process(order_id, asset_id, staging, widgets=staged[:1]))[0],
            (await v3.post_process(order_id, asset_id, staging, widgets=staged))[0],
            (await v3.post_process(order_id, asset_id, "tool-day-to-dusk", widgets=dusk))[0],
            (await v3.post_process(order_id, asset_id, "tool-item-removal"))[0],
        ]

    assert talk(sandbox, scenario) == [422, 422, 201, 201, 201]


def test_the_result_shows_which_tool_ran(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Day to dusk gives a darker result than image enhancement of the same photo, blue on top."""
    photo = photo_factory(tmp_path, "a.jpg", size=(64, 48), color=(200, 200, 190))

    async def scenario(v3: V3) -> list[Image.Image]:
        order_id, asset_id = await v3.order(photo)
        results = []
        for tool in (IE, "tool-day-to-dusk"):
            done = await v3.finished(await v3.process(order_id, asset_id, tool))
            _, data = await v3.download(done["final_assets"][0]["src"])
            results.append(Image.open(io.BytesIO(data)).convert("RGB"))
        return results

    enhanced, dusk = talk(sandbox, scenario)
    assert sum(ImageStat.Stat(dusk).mean) < sum(ImageStat.Stat(enhanced).mean) - 60
    red, _, blue = ImageStat.Stat(dusk.crop((0, 0, 64, 6))).mean  # the sky, at the top
    assert blue > red + 15


def test_a_lost_answer_after_the_charge_leaves_the_process_on_the_order(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """lost_after_charge on POST /v3/process: charged, the answer dropped, the order shows it."""
    sandbox = make_sandbox(faults=Faults(lost_after_charge_rate=1.0))
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[str, Any]:
        order_id, asset_id = await v3.order(photo)
        try:
            await v3.post_process(order_id, asset_id)
        except aiohttp.ClientError as exc:
            lost = type(exc).__name__
        else:
            raise AssertionError("the answer was not dropped")
        return lost, await v3.data("GET", f"/v3/order/{order_id}")

    lost, order = talk(sandbox, scenario)
    assert lost in ("ServerDisconnectedError", "ClientOSError")
    (entry,) = order["processes"]
    assert entry["tool"] == IE and order["status"] == "active"
    stats = sandbox.stats()
    assert (stats.process_posts, stats.processes_charged, sum(stats.charges.values())) == (1, 1, 1)


def test_a_charged_process_answered_500_is_not_shown_until_the_details_lag_passed(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """error_after_charge on POST /v3/process: charged, a 500 with the API's body; with
    details_lag the order shows no process (idle) and the process reads 404 until it passed."""
    lag = 1.5
    sandbox = make_sandbox(  # a process runs 30 s: still active when the lag has passed
        time_scale=1.0,
        eta_seconds=30,
        faults=Faults(error_after_charge_rate=1.0, details_lag_seconds=lag),
    )
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[tuple[int, Any], Any, Any]:
        order_id, asset_id = await v3.order(photo)
        answer = await v3.post_process(order_id, asset_id)
        charged = time.monotonic()
        early = await v3.data("GET", f"/v3/order/{order_id}")
        await asyncio.sleep(lag - (time.monotonic() - charged) + 0.1)
        return answer, early, await v3.data("GET", f"/v3/order/{order_id}")

    answer, early, later = talk(sandbox, scenario)
    assert answer == (500, {"error": "internal server error", "key": "api_error_internal"})
    assert (early["status"], early["processes"]) == ("idle", [])
    (entry,) = later["processes"]
    assert entry["tool"] == IE and later["status"] == "active"
    stats = sandbox.stats()
    assert (stats.process_posts, stats.processes_charged, sum(stats.charges.values())) == (1, 1, 1)

    # A process whose answer came: read 404 until the lag passed, then as it is.
    sandbox.set_faults(Faults(details_lag_seconds=lag))

    async def unseen(v3: V3) -> tuple[int, int]:
        order_id, asset_id = await v3.order(photo_factory(tmp_path, "b.jpg"))
        process_id = await v3.process(order_id, asset_id)
        started = time.monotonic()
        early, _ = await v3.call("GET", f"/v3/process/{process_id}")
        await asyncio.sleep(lag - (time.monotonic() - started) + 0.1)
        return early, (await v3.call("GET", f"/v3/process/{process_id}"))[0]

    assert talk(sandbox, unseen) == (404, 200)


@pytest.mark.parametrize(
    "faults",
    [Faults(order_error_rate=1.0), Faults(order_reset_rate=1.0), Faults(error_first=1)],
    ids=["order-error", "order-reset", "error-first"],
)
def test_order_post_faults_refuse_a_process_before_any_charge(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path, faults: Faults
) -> None:
    """The order-POST faults (5xx, reset, the first N errors) hit POST /v3/process uncharged."""
    sandbox = make_sandbox()
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[str, Any]:
        order_id, asset_id = await v3.order(photo)
        sandbox.set_faults(faults)
        try:
            status, _ = await v3.post_process(order_id, asset_id)
            outcome = str(status)
        except aiohttp.ClientError:
            outcome = "reset"
        return outcome, await v3.data("GET", f"/v3/order/{order_id}")

    outcome, order = talk(sandbox, scenario)
    assert outcome == ("reset" if faults.order_reset_rate else "500")
    assert (order["status"], order["processes"]) == ("idle", [])
    assert (sandbox.stats().process_posts, sandbox.stats().charges) == (1, {})


def test_a_held_answer_is_charged_and_reported_until_the_client_leaves(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """hold_after_charge on POST /v3/process: charged, held (stats say so), dropped on leaving."""
    sandbox = make_sandbox()
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[int, int]:
        order_id, asset_id = await v3.order(photo)
        sandbox.set_faults(Faults(hold_after_charge_rate=1.0, hold_seconds=60))
        posting = asyncio.create_task(v3.post_process(order_id, asset_id))
        while sandbox.stats().holding == 0:  # the charged answer is held back now
            await asyncio.sleep(0.01)
        charged_while_held = sandbox.stats().processes_charged
        posting.cancel()  # the client goes away, as a killed aihd would
        with pytest.raises(asyncio.CancelledError):
            await posting
        while sandbox.stats().holding:
            await asyncio.sleep(0.01)
        return charged_while_held, sandbox.stats().held

    assert talk(sandbox, scenario) == (1, 1)


def test_a_failing_process_is_charged_and_ends_failed_without_results(
    make_sandbox: MakeSandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """process_failure_rate=1: the process is charged, then failed, with no final_assets."""
    sandbox = make_sandbox(faults=Faults(process_failure_rate=1.0))
    photo = photo_factory(tmp_path, "a.jpg")

    async def scenario(v3: V3) -> tuple[Any, Any]:
        order_id, asset_id = await v3.order(photo)
        failed = await v3.finished(await v3.process(order_id, asset_id))
        return failed, await v3.data("GET", f"/v3/order/{order_id}")

    failed, order = talk(sandbox, scenario)
    assert (failed["status"], failed["final_assets"]) == ("failed", [])
    assert failed["error_key"] == "api_error_process_failed"
    assert order["status"] == "failed"
    assert sum(sandbox.stats().charges.values()) == 1


def test_readings_are_set_and_read_over_http_without_a_key(sandbox: Sandbox) -> None:
    """POST /_sandbox/v3 sets readings (others back to default), refuses unknown ones; GET reads."""

    async def scenario(v3: V3) -> list[tuple[int, Any]]:
        return [
            await v3.call(
                "POST", "/_sandbox/v3", json={"envelope": "bare", "temp_link_seconds": 5}
            ),
            await v3.call("GET", "/v3/project", headers={"x-api-key": sandbox.api_key}),
            await v3.call("POST", "/_sandbox/v3", json={"envelope": "naked"}),
            await v3.call("POST", "/_sandbox/v3", json={"envlope": "bare"}),
            await v3.call("GET", "/_sandbox/v3"),
        ]

    (set_status, readings), listed, bad_value, bad_name, current = talk(sandbox, scenario, "")
    assert set_status == 200
    assert readings == {
        **dataclasses.asdict(V3Readings()),
        "envelope": "bare",
        "temp_link_seconds": 5,
    }
    assert listed == (200, [])  # bare: the list as it is
    assert bad_value[0] == bad_name[0] == 400
    assert "naked" in bad_value[1]["error"] and "envlope" in bad_name[1]["error"]
    assert current == (200, readings)


def test_aihd_sandbox_plays_the_readings_named_by_its_v3_options() -> None:
    """`aihd sandbox --v3 NAME=VALUE` serves those readings (read back at /_sandbox/v3)."""
    options = ["--v3", "envelope=bare", "--v3", "result_src=false", "--v3", "temp_link_seconds=9"]
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--port", "0", "--key", "k-1", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().rsplit(" ", 1)[1].strip()

        async def read() -> Any:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url + "/_sandbox/v3") as response,
            ):
                return await response.json()

        readings = asyncio.run(read())
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.communicate()
    expected = V3Readings(envelope="bare", result_src=False, temp_link_seconds=9)
    assert readings == dataclasses.asdict(expected)


def test_aihd_sandbox_refuses_an_unknown_reading_in_one_line() -> None:
    """A bad --v3 value is a usage error (exit 2) naming the reading and its choices."""
    result = aihd(["sandbox", "--port", "0", "--v3", "envelope=naked"], None)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aihd: error: --v3: envelope must be one of ['wrapped', 'bare'], not 'naked'"
    ]


@pytest.mark.parametrize(
    "faults", [Faults(error_rate=1.0), Faults(reset_rate=1.0)], ids=["error", "reset"]
)
def test_request_faults_apply_to_every_v3_route_but_the_tools_list(
    make_sandbox: MakeSandbox, faults: Faults
) -> None:
    """error_rate and reset_rate hit /v3 calls as /v1 ones; the tools list is not the API's."""
    sandbox = make_sandbox(faults=faults)

    async def scenario(v3: V3) -> tuple[list[str], int]:
        outcomes = []
        for method, path in [("GET", "/v3/project"), ("GET", "/v3/order/x")]:
            try:
                outcomes.append(str((await v3.call(method, path))[0]))
            except aiohttp.ClientError:
                outcomes.append("reset")
        return outcomes, (await v3.call("GET", "/api/tools"))[0]

    outcomes, tools = talk(sandbox, scenario)
    assert outcomes == ["500" if faults.error_rate else "reset"] * 2
    assert tools == 200


def test_an_asset_over_50_mb_is_streamed_and_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    """POST /v3/order with a file over 50 MB is a 400 naming the file; no order is made."""
    big = tmp_path / "huge.jpg"
    with big.open("wb") as sparse:
        sparse.truncate(50 * 1024 * 1024 + 1)  # a hole on disk, nothing in memory

    async def scenario(v3: V3) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("asset_file", big.open("rb"), filename=big.name)
        return await v3.call("POST", "/v3/order", data=form)

    status, body = talk(sandbox, scenario)
    assert (status, body["error"]) == (400, "huge.jpg: image larger than 50 MB")
    assert sandbox.stats().v3_orders == 0


@pytest.mark.parametrize("counts", ["processes", "orders"])
def test_a_remembered_emulators_window_still_counts_the_v3_places_of_the_one_before(
    make_sandbox: MakeSandbox,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    counts: str,
) -> None:
    """`aihd run --sandbox` then another command: the second emulator on the same state still
    counts the first one's v3 processes (or orders, as read) in the account's window, as it
    counts v1's charges (tests/test_sandbox_memory.py): the 3rd in a 2-window is a 429."""
    readings = V3Readings(window_counts=counts)  # type: ignore[arg-type]
    state = tmp_path / "state.emulator"
    config = {"orders_per_window": 2, "window_seconds": 600, "v3": readings, "state_path": state}
    first = make_sandbox(**config)
    photos = [photo_factory(tmp_path, f"{n}.jpg") for n in range(3)]

    async def two(v3: V3) -> None:
        for photo in photos[:2]:
            await v3.process(*await v3.order(photo))

    talk(first, two)
    second = make_sandbox(**{**config, "api_key": first.api_key})

    async def third(v3: V3) -> tuple[int, Any]:
        if counts == "orders":
            return await v3.post_order(photos[2:])
        return await v3.post_process(*await v3.order(photos[2]))

    assert talk(second, third) == (429, RATE_LIMIT_BODY)
    stats = second.stats()
    assert (stats.rate_limited, stats.processes_charged) == (1, 0)
