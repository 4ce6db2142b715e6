"""The in-process emulator of `--sandbox` remembers its orders between commands, as the real
API does: run, then run --collect, then collect all work, each in its own process."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.api.v1 import ApiClient
from pipeline.errors import RateLimited
from pipeline.ledger import State
from pipeline.ordering.catalog import Catalog
from pipeline.sandbox import SandboxConfig, SandboxThread
from tests.cli_helpers import FAST, aihd, ledger_rows, write_manifest

PhotoFactory = Callable[..., Path]


@pytest.mark.slow
def test_run_then_run_collect_then_collect_each_with_its_own_emulator(
    photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Orders placed by one `--sandbox` process are found by the next: nothing fails with
    api_error_order_not_found, nothing is ordered twice."""
    for n in range(4):
        photo_factory(tmp_path / "inside", f"room{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", ["Add Fire to Fireplace"])})
    done = aihd(["run", str(manifest), "--sandbox", *FAST], None)
    assert done.returncode == 0, done.stderr
    assert {r.state for r in ledger_rows(manifest)} == {State.SUBMITTED}
    assert (tmp_path / "photos.ledger.sqlite.emulator" / "orders.sqlite").is_file()

    photo_factory(tmp_path / "inside", "room4.jpg")
    done = aihd(["run", str(manifest), "--sandbox", "--collect", *FAST, "--json"], None)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["orders_spent"] == 1  # only the new photo
    assert summary["collected"]["completed"] == 5 and summary["collected"]["failed"] == 0
    assert {r.state for r in ledger_rows(manifest)} == {State.COMPLETED}

    photo_factory(tmp_path / "inside", "room5.jpg")
    assert aihd(["run", str(manifest), "--sandbox", *FAST], None).returncode == 0
    done = aihd(["collect", str(manifest), "--sandbox", "--wait", "--no-progress"], None)
    assert done.returncode == 0, done.stderr
    assert "completed: 1; waiting: 0; failed: 0" in done.stdout
    rows = ledger_rows(manifest)
    assert {r.state for r in rows} == {State.COMPLETED}
    assert all(Path(r.output_paths[0]).is_file() for r in rows)


def _charge(url: str, key: str, photo: Path) -> None:
    async def order() -> None:
        async with ApiClient(url, key) as client:
            space = (await Catalog.fetch(client)).resolve("indoor", []).space.name
            await client.submit(await client.upload(photo), space, [])

    asyncio.run(order())


def test_a_remembered_emulator_keeps_its_catalog_ids_orders_and_window(
    photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A second emulator on the same state: the same catalog ids, the first one's orders and
    results, and its order window still counting the first one's charges."""
    state = tmp_path / "state.emulator"
    config = SandboxConfig(
        api_key=secrets.token_urlsafe(24),
        orders_per_window=2,
        window_seconds=600,
        eta_seconds=0,
        state_path=state,
    )
    photos = [photo_factory(tmp_path / "in", f"p{n}.jpg") for n in range(3)]

    async def catalog_and_order(url: str) -> tuple[object, str]:
        async with ApiClient(url, config.api_key) as client:
            catalog = await Catalog.fetch(client)
            order_id = await client.upload(photos[0])
            await client.submit(order_id, catalog.resolve("indoor", []).space.name, [])
            return catalog.describe(), order_id

    with SandboxThread(config) as first:
        described, order_id = asyncio.run(catalog_and_order(first.url))
        _charge(first.url, config.api_key, photos[1])  # the window's second order

    async def second_look(url: str) -> tuple[object, str, bytes]:
        async with ApiClient(url, config.api_key) as client:
            catalog = await Catalog.fetch(client)
            details = await client.order(order_id)
            target = tmp_path / "result.jpg"
            await client.fetch_result(details.generated_images[0], target, "")
            return catalog.describe(), details.status, target.read_bytes()

    with SandboxThread(config) as second:
        again, status, result = asyncio.run(second_look(second.url))
        assert again == described
        assert status == "finished" and result[:2] == b"\xff\xd8"
        with pytest.raises(RateLimited):
            _charge(second.url, config.api_key, photos[2])  # the window is still full
        assert second.stats().orders_charged == 0


def test_a_v3_run_then_collect_each_with_its_own_emulator(
    photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """v3 too: the project made by the first process is the next one's, and its processes'
    results are collected by a third."""
    for n in range(3):
        photo_factory(tmp_path / "inside", f"room{n}.jpg")
    manifest = write_manifest(
        tmp_path,
        {"inside": ("indoor", [])},
        api="v3",
        folder_keys={"inside": {"project": "12 Oak St"}},
    )
    assert aihd(["run", str(manifest), "--sandbox", *FAST], None).returncode == 0
    photo_factory(tmp_path / "inside", "room3.jpg")
    done = aihd(["run", str(manifest), "--sandbox", *FAST, "--json"], None)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders_spent"] == 1
    done = aihd(["collect", str(manifest), "--sandbox", "--wait", "--no-progress"], None)
    assert done.returncode == 0, done.stderr
    assert "completed: 4; waiting: 0; failed: 0" in done.stdout
    rows = ledger_rows(manifest)
    assert {r.state for r in rows} == {State.COMPLETED} and len(rows) == 4
