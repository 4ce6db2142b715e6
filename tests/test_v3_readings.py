"""One test per reading of each v3 unknown (notes section 13): the emulator plays it, and the
user sees the same thing either way: each photo charged once, completed, its result on disk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline import eventloop
from pipeline.api.records import GeneratedImage
from pipeline.api.v3 import V3Client
from pipeline.api.v3_slugs import build_spec
from pipeline.ledger import State
from pipeline.sandbox import Sandbox, V3Readings
from tests.cli_helpers import FAST, aihd, ledger_rows, write_manifest

PhotoFactory = Callable[..., Path]
INSIDE: dict[str, tuple[str, list[str]]] = {"12-oak-st/inside": ("indoor", [])}
PROCESS_GETS = "GET /v3/process/{process_id}"


def _run_and_collect(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, photos: int = 3, **kw: Any
) -> dict[str, Any]:
    """Order ``photos`` photos through v3 and collect them; assert what the user sees."""
    for n in range(photos):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3", **kw)
    done = aihd(["run", str(manifest), *FAST, "--json", "--collect"], sandbox, timeout=180)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    rows = ledger_rows(manifest)
    assert len(rows) == photos and {r.state for r in rows} == {State.COMPLETED}
    assert all(r.order_id and r.image_id for r in rows)
    assert sorted(sandbox.stats().charges.values()) == [1] * photos
    results = sorted((tmp_path / "enhanced").rglob("*.jpg"))
    assert len(results) == photos
    for result in results:
        with Image.open(result) as image:
            image.verify()
    return summary


@pytest.mark.parametrize(
    "reading",
    [
        {"envelope": "wrapped"},
        {"envelope": "bare"},
        {"process_id_field": "process_ids"},
        {"process_id_field": "process_id"},
        {"role_field": "asset_role"},
        {"role_field": "asset_roles"},
        {"project_id": "optional"},
        {"project_id": "required"},
        {"process_entry_id": "id", "process_entry_tool": True},
        {"process_entry_id": "process_id", "process_entry_tool": False},
        {"result_src": True},
        {"result_src": False},
        {"active_status": "active", "done_status": "done"},
        {"active_status": "processing", "done_status": "completed"},
        {"envelope": "bare", "process_id_field": "process_id", "result_src": False},
    ],
    ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()),
)
def test_each_reading_of_a_v3_shape_orders_and_collects_every_photo_once(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    reading: dict[str, Any],
) -> None:
    """Wrapped or bare answers, single or list process ids, either role field name (the role
    is left out: both accept it), project required or optional, processes[] id or process_id,
    src or temp_src only, either status names: each photo charged once, collected."""
    sandbox = make_sandbox(v3=V3Readings(**reading))
    _run_and_collect(sandbox, photo_factory, tmp_path)


@pytest.mark.parametrize(
    ("counts", "in_flight"),
    [("processes", False), ("orders", False), ("processes", True), ("orders", True)],
)
def test_the_v3_window_meets_no_429_whether_it_counts_processes_or_orders_or_runs(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    counts: str,
    in_flight: bool,
) -> None:
    """A window of 3 per 1 s counting process POSTs or order POSTs, and (in_flight) refusing
    while 3 processes still run: 7 photos, 0 429s, each charged once."""
    readings = V3Readings(window_counts=counts, window_in_flight=in_flight)  # type: ignore[arg-type]
    # Processes take 0.45 s (30 s eta x 0.015): several are still running when a slot frees.
    sandbox = make_sandbox(
        v3=readings, orders_per_window=3, window_seconds=1.0, eta_seconds=30, time_scale=0.015
    )
    summary = _run_and_collect(
        sandbox, photo_factory, tmp_path, photos=7, orders=3, per_seconds=1.0, concurrency=4
    )
    assert summary["rate_limited"] == 0
    assert sandbox.stats().rate_limited == 0


def test_an_expired_temporary_link_is_read_afresh_from_its_process(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """temp_src only, valid 1 s: a link read 1.5 s ago is refused (403), so the client reads
    the process again and downloads the fresh link; the result is on disk."""
    sandbox = make_sandbox(v3=V3Readings(result_src=False, temp_link_seconds=1.0))
    photo = photo_factory(tmp_path, "a.jpg")
    dest = tmp_path / "result.jpg"
    spec = build_spec("image-enhancement", project="12 Oak St")

    async def scenario() -> tuple[GeneratedImage, int]:
        async with V3Client(sandbox.url, sandbox.api_key) as client:
            order_id = await client.send_photo(photo, spec)
            await client.spend(order_id, spec)
            while not (details := await client.order(order_id)).generated_images:
                await asyncio.sleep(0.05)
            image = details.generated_images[0]
            await asyncio.sleep(1.5)  # the link certainly expired
            before = sandbox.stats().requests.get(PROCESS_GETS, 0)
            await client.fetch_result(image, dest, spec.service)
            return image, sandbox.stats().requests.get(PROCESS_GETS, 0) - before

    image, process_reads = eventloop.run(scenario())
    assert "temp" in image.src
    assert process_reads == 1
    with Image.open(dest) as result:
        result.verify()
    assert sorted(sandbox.stats().charges.values()) == [1]
