"""v1 upscales through ``aihd serve``: asked for once per result whatever happens (duplicate
webhooks, a lost answer, a restart), placed beside the enhanced photo when the webhook comes,
shown in status and export; never fetched from a link the API did not vouch for; refused by
``run`` and ``plan``, which have no webhook receiver."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pipeline.ledger import open_ledger
from pipeline.sandbox import Faults, Sandbox, Webhooks
from tests.cli_helpers import aihd, write_manifest
from tests.serve_helpers import (
    rows_of,
    spawn_serve,
    wait_until,
    webhook_json,
)
from tests.webhook_helpers import listening

# Each starts `aihd serve` as a process and waits on real time: seconds, not milliseconds.
pytestmark = pytest.mark.slow


def _upscales(ledger: Path) -> dict[str, tuple[str, str | None]]:
    opened = open_ledger(ledger)
    try:
        return {u.generated_image_id or "": (u.state, u.output_path) for u in opened.upscales()}
    finally:
        opened.close()


def _manifest(root: Path, photos: Callable[..., Path], count: int = 2) -> Path:
    for n in range(count):
        photos(root / "inside", f"room{n}.jpg", size=(60, 40))
    return write_manifest(
        root, {"inside": ("indoor", [])}, folder_keys={"inside": {"upscale": "true"}}
    )


def test_a_folder_with_upscale_gets_each_result_upscaled_once_beside_the_enhanced_one(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Duplicate webhooks and a lost upscale answer included: one upscale POST per result,
    ever (a restart sends none), and the upscaled photo, twice the size, beside the result."""
    manifest = _manifest(tmp_path, photo_factory)
    ledger = tmp_path / "photos.ledger.sqlite"
    sandbox = make_sandbox(eta_seconds=2, faults=Faults(upscale_lost_rate=0.5, seed=3))
    served = spawn_serve([manifest], sandbox)
    sandbox.set_webhooks(Webhooks(urls=(served.hooks,), duplicates=1))
    wait_until(
        lambda: [s for s, _ in _upscales(ledger).values()] == ["completed", "completed"],
        what="both upscales placed",
    )
    code, _ = served.stop()
    assert code == 0, served.stderr()
    again = spawn_serve([manifest], sandbox)
    wait_until(lambda: "listening" in again.stderr())
    wait_until(lambda: again.metric('aihd_upscales{state="completed"}') == 2)
    assert again.stop()[0] == 0
    stats = sandbox.stats()
    assert sorted(stats.upscales.values()) == [1, 1]  # once each, lost answer and restart too
    for row in rows_of(ledger):
        (enhanced,) = row.output_paths
        upscaled = Path(enhanced).with_name(Path(enhanced).stem + "-upscaled.jpg")
        assert upscaled.is_file()
        with Image.open(enhanced) as small, Image.open(upscaled) as big:
            assert big.size == (small.width * 2, small.height * 2)
    status = aihd(["status", str(manifest)], sandbox)
    assert "upscales (aihd serve): 2 completed" in status.stdout
    export = aihd(["export", str(manifest), "--format", "csv"], sandbox)
    records = list(csv.DictReader(io.StringIO(export.stdout)))
    assert [r["upscale"] for r in records] == ["completed", "completed"]
    assert all(r["upscale_paths"].endswith("-upscaled.jpg") for r in records)


def test_a_listing_whose_names_are_not_utf8_is_served_and_upscaled(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """A listing folder and a photo named in Latin-1 bytes (an old camera, a Windows share)
    under a glob: ordered once, collected and upscaled beside its result; the ledger keeps the
    name's bytes, status and export show them escaped."""
    listing = os.fsdecode(b"caf\xe9-st")
    photo = photo_factory(tmp_path / "listings" / listing / "inside", os.fsdecode(b"h\xe9.jpg"))
    manifest = tmp_path / "photos.yaml"
    manifest.write_text(
        "version: 1\nledger: photos.ledger.sqlite\noutput: enhanced\nfolders:\n"
        "  - path: listings/*/inside\n    space: indoor\n    upscale: true\n"
    )
    ledger = tmp_path / "photos.ledger.sqlite"
    sandbox = make_sandbox()
    served = spawn_serve([manifest], sandbox)
    wait_until(lambda: [s for s, _ in _upscales(ledger).values()] == ["completed"])
    assert served.stop()[0] == 0
    (row,) = rows_of(ledger)
    assert row.path == str(photo)  # the file's own name, bytes and all
    ((_, upscaled),) = _upscales(ledger).values()
    assert upscaled is not None and Path(upscaled).is_file()
    assert Path(upscaled).parent == Path(row.output_paths[0]).parent
    assert list(sandbox.stats().charges.values()) == [1]
    assert sorted(sandbox.stats().upscales.values()) == [1]
    status = aihd(["status", str(manifest)], sandbox)
    assert "listings/caf\\xe9-st/inside" in status.stdout
    assert "upscales (aihd serve): 1 completed" in status.stdout
    export = aihd(["export", str(manifest), "--format", "csv"], sandbox)
    (record,) = csv.DictReader(io.StringIO(export.stdout))
    assert record["upscale"] == "completed"
    assert "caf\\xe9-st" in record["upscale_paths"] and "\ufffd" not in export.stdout


def test_aihd_upscale_asks_for_photos_a_nightly_run_completed(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    for n in range(2):
        photo_factory(tmp_path / "inside", f"room{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    sandbox = make_sandbox(eta_seconds=2)
    done = aihd(["run", str(manifest), "--no-progress", "--collect"], sandbox)
    assert done.returncode == 0, done.stderr
    asked = aihd(["upscale", str(manifest)], sandbox)
    assert asked.returncode == 0, asked.stderr
    assert "2 photos to upscale" in asked.stdout and f"aihd serve {manifest}" in asked.stdout
    assert (
        "0 photos to upscale (2 asked for before)"
        in aihd(["upscale", str(manifest)], sandbox).stdout
    )
    served = spawn_serve([manifest], sandbox)
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(lambda: [s for s, _ in _upscales(ledger).values()] == ["completed"] * 2)
    assert served.stop()[0] == 0
    assert sorted(sandbox.stats().upscales.values()) == [1, 1]


@pytest.mark.parametrize("reading", ["webhook only", "order details"])
def test_an_upscale_link_the_api_did_not_vouch_for_is_never_fetched(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    reading: str,
) -> None:
    """A forged upscale webhook for a real generated image, pointing elsewhere: nothing is
    fetched from there. The real one (the API's own origin, or the link the order's details
    give) is placed."""
    manifest = _manifest(tmp_path, photo_factory, count=1)
    ledger = tmp_path / "photos.ledger.sqlite"
    in_details = reading == "order details"
    # The genuine upscale webhook comes late: the forged one is first.
    sandbox = make_sandbox(eta_seconds=2, upscale_seconds=4.0, upscale_in_order_details=in_details)
    served = spawn_serve([manifest], sandbox)
    wait_until(lambda: [s for s, _ in _upscales(ledger).values()] == ["requested"])
    (generated,) = _upscales(ledger)
    with listening() as foreign:
        forged = {
            "generated_image_id": generated,
            "upscaled_image_src": foreign.url + "/upscaled.jpg",
            "user_id": "",
        }
        assert served.post(webhook_json(forged))[0] == 202
        wait_until(lambda: [s for s, _ in _upscales(ledger).values()] == ["completed"])
        assert foreign.heard == []
    assert served.stop()[0] == 0
    ((_, path),) = _upscales(ledger).values()
    assert path is not None and Path(path).is_file()


def test_run_and_plan_refuse_upscale_without_a_webhook_receiver_and_v3_refuses_it(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, photo_factory)
    sandbox = make_sandbox()
    for command in (["run", str(manifest)], ["plan", str(manifest)]):
        refused = aihd(command, sandbox)
        assert refused.returncode == 2
        assert "arrives only by webhook" in refused.stderr
        assert "aihd serve photos.yaml" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert sandbox.stats().uploads == 0
    planned = aihd(["plan", str(manifest), "--serve", "--json"], sandbox)
    assert planned.returncode == 0, planned.stderr
    assert '"upscales": 2' in planned.stdout
    v3 = write_manifest(
        tmp_path,
        {"inside": ("indoor", [])},
        api="v3",
        name="v3.yaml",
        folder_keys={"inside": {"upscale": "true"}},
    )
    refused = aihd(["serve", str(v3)], sandbox)
    assert refused.returncode == 2 and "upscale is an option of the v1 API only" in refused.stderr
