"""`aihd plan` spends nothing, and the run after it spends exactly what it announced."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pipeline import eventloop
from pipeline.api.v1 import ApiClient
from pipeline.ledger import State, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, write_manifest


def _upload(sandbox: Sandbox, photo: str) -> str:
    """The order id of a real upload, as a killed run would have had it."""

    async def upload() -> str:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            return await client.upload(photo)

    return eventloop.run(upload())


def _plan(manifest: Path, sandbox: Sandbox) -> dict[str, object]:
    done = aihd(["plan", str(manifest), "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    plan: dict[str, object] = json.loads(done.stdout)
    return plan


def test_plan_spends_nothing_and_the_run_spends_what_it_announced(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    first = [photo_factory(inside, f"a{n}.jpg") for n in range(3)]
    outside.mkdir()
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", ["Add Screen to TV"]), "outside": ("outdoor", [])}
    )
    assert not manifest.with_name("photos.ledger.sqlite").exists()
    assert _plan(manifest, sandbox)["orders"] == 3
    assert not manifest.with_name("photos.ledger.sqlite").exists()  # plan created no ledger
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0

    # The next night: new photos, a copy of a paid one, a broken one.
    for n in range(2):
        photo_factory(inside, f"b{n}.jpg")
    photo_factory(outside, "front.jpg")
    (inside / "copy.jpg").write_bytes(first[0].read_bytes())
    (outside / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    charged = sandbox.stats().orders_charged
    plan = _plan(manifest, sandbox)
    stats = sandbox.stats()
    assert stats.uploads == 3 and stats.order_posts == 3  # plan spent nothing
    folders = {f["folder"]: f for f in plan["folders"]}  # type: ignore[attr-defined]
    assert folders["inside"]["done"] == 3 and folders["inside"]["duplicates"] == 1
    assert folders["inside"]["new"] == 2 and folders["outside"]["new"] == 1
    assert [b["path"] for b in folders["outside"]["broken"]] == [str(outside / "broken.jpg")]
    assert plan["orders"] == 3

    run = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert run.returncode == 1  # the broken photo
    assert sandbox.stats().orders_charged - charged == plan["orders"]
    assert json.loads(run.stdout)["orders_spent"] == plan["orders"]


def test_plan_says_how_long_the_window_makes_it_take(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    for n in range(12):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=10, per_seconds=600)
    done = aihd(["plan", str(manifest)], sandbox)
    assert done.returncode == 0, done.stderr
    assert "12 orders, about 12 min at 10 per 10 min" in done.stdout
    assert sandbox.stats().uploads == 0


def test_plan_checks_names_against_the_catalog(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    photo_factory(tmp_path / "inside", "p.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("attic", [])})
    done = aihd(["plan", str(manifest)], sandbox)
    assert done.returncode == 2
    assert "photos.yaml:" in done.stderr and "'attic'" in done.stderr and "indoor" in done.stderr


def test_plan_counts_what_a_stopped_run_left_and_the_next_run_spends_it(
    sandbox: Sandbox, photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    for n in range(5):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    stopped = aihd(["run", str(manifest), *FAST, "--max-orders", "1"], sandbox)
    assert stopped.returncode == 4, stopped.stderr
    # One more order as a killed run leaves it: uploaded, intent recorded, never sent.
    ledger = open_ledger(manifest.with_name("photos.ledger.sqlite"))
    try:
        row = next(r for r in ledger.photos() if r.state in (State.PENDING, State.UPLOADED))
        ledger.mark_submitting(row.id, None if row.order_id else _upload(sandbox, row.path))
        states = [r.state for r in ledger.photos()]
    finally:
        ledger.close()
    charged = sandbox.stats().orders_charged

    plan = _plan(manifest, sandbox)
    (inside,) = plan["folders"]  # type: ignore[misc]
    # The stopped run's own order may be confirmed or still in flight ("to check").
    assert inside["done"] == states.count(State.SUBMITTED)
    assert inside["check"] == states.count(State.SUBMITTING) >= 1
    assert inside["resume"] == plan["orders"] == 5 - inside["done"] - inside["check"]
    assert plan["orders_at_most"] == plan["orders"] + inside["check"]
    text = aihd(["plan", str(manifest)], sandbox).stdout
    assert f"{plan['orders']} orders" in text and f"up to {inside['check']} more" in text
    assert sandbox.stats().orders_charged == charged  # plan spent nothing

    run = aihd(["run", str(manifest), *FAST], sandbox)
    assert run.returncode == 0, run.stderr
    spent = sandbox.stats().orders_charged - charged
    assert plan["orders"] + 1 <= spent <= plan["orders_at_most"]  # the never-sent one costs
    assert sandbox.stats().orders_charged == 5  # still one order per photo
