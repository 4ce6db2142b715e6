"""`api: v3`: the same commands and promises through AI HomeDesign's v3 API (issue 14).

Each test drives the real `aihd` command against the local emulator speaking v3 and asserts
what a user sees: ledger rows, the emulator's charges, exit codes, messages and files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pipeline.api.v3_slugs import ROOMS, STYLES, build_spec, check_live
from pipeline.errors import ToolOptionError
from pipeline.ledger import PhotoOptions, State
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]
INSIDE: dict[str, tuple[str, list[str]]] = {"12-oak-st/inside": ("indoor", [])}


def _run(
    manifest: Path,
    sandbox: Sandbox,
    *extra: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, object]:
    done = aihd(["run", str(manifest), *FAST, "--json", *extra], sandbox, timeout=timeout, env=env)
    summary: dict[str, object] = json.loads(done.stdout) if done.stdout else {}
    summary["_exit"] = done.returncode
    summary["_stderr"] = done.stderr
    return summary


def _charges(sandbox: Sandbox) -> list[int]:
    return sorted(sandbox.stats().charges.values())


def _projects(manifest: Path) -> list[tuple[str, str, str]]:
    """(account, address, project id) of the v3 projects the manifest's ledger keeps."""
    conn = sqlite3.connect(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        rows = conn.execute("SELECT account, address, project_id FROM v3_projects").fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]
    finally:
        conn.close()


def test_the_identity_of_a_v1_photo_never_changes() -> None:
    """Existing ledgers hold paid v1 photos: their identity is pinned byte for byte."""
    fire = PhotoOptions("service-image-enhancement", "indoor", ("Add Fire to Fireplace",))
    plain = PhotoOptions("service-image-enhancement", "outdoor", ())
    assert fire.identity("ab" * 32) == (
        "9784ebf0ec8aa536e9557ad03868a50fa27c1a3c6ba83c0e852cb293048ed1e7"
    )
    assert plain.identity("0" * 64) == (
        "7b86437bff726e359bde404c52c8bd94013b11b601f9911f54f0a893d2ee71a4"
    )


def test_a_v3_run_orders_each_photo_once_in_its_listing_project_and_collects_it(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """One project per listing, one order and one process per photo, one charge each;
    the ledger keeps the v3 order id and the process id; results are downloaded."""
    for n in range(3):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3")
    done = _run(manifest, sandbox, "--collect")
    assert (done["_exit"], done["orders_spent"]) == (0, 3), done["_stderr"]
    rows = ledger_rows(manifest)
    assert {r.state for r in rows} == {State.COMPLETED}
    assert all(r.service == "v3:tool-image-enhancement" for r in rows)
    assert all(r.order_id and r.image_id for r in rows)
    assert len({r.order_id for r in rows}) == 3
    stats = sandbox.stats()
    assert _charges(sandbox) == [1, 1, 1]
    assert (stats.v3_orders, stats.process_posts, stats.order_posts) == (3, 3, 0)
    assert [p[1] for p in _projects(manifest)] == ["12-oak-st"]
    outputs = sorted((tmp_path / "enhanced").rglob("*.jpg"))
    assert len(outputs) == 3
    again = _run(manifest, sandbox, "--collect")
    assert (again["_exit"], again["orders_spent"]) == (0, 0)
    assert _charges(sandbox) == [1, 1, 1]
    assert sandbox.stats().v3_orders == 3


def test_v3_tools_day_to_dusk_item_removal_and_staging_are_ordered_with_their_widgets(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Each folder's tool and options reach the API (the emulator checks the slugs)."""
    for folder in ("outside", "clutter", "empty"):
        photo_factory(tmp_path / "9-elm-st" / folder, "a.jpg")
    manifest = write_manifest(
        tmp_path,
        {
            "9-elm-st/outside": ("indoor", ["shadow removal"]),
            "9-elm-st/clutter": ("indoor", []),
            "9-elm-st/empty": ("indoor", []),
        },
        api="v3",
        folder_keys={
            "9-elm-st/outside": {"tool": "day-to-dusk"},
            "9-elm-st/clutter": {"tool": "item removal", "project": "9 Elm Street"},
            "9-elm-st/empty": {"tool": "virtual-staging", "room": "bedroom", "style": "Modern"},
        },
    )
    done = _run(manifest, sandbox, "--collect")
    assert (done["_exit"], done["orders_spent"]) == (0, 3), done["_stderr"]
    services = {Path(r.folder).name: r.service for r in ledger_rows(manifest)}
    assert services == {
        "outside": "v3:tool-day-to-dusk",
        "clutter": "v3:tool-item-removal",
        "empty": "v3:tool-virtual-staging",
    }
    assert sorted(p[1] for p in _projects(manifest)) == ["9 elm street", "9-elm-st"]
    assert _charges(sandbox) == [1, 1, 1]
    assert len(list((tmp_path / "enhanced").rglob("*.jpg"))) == 3


@pytest.mark.parametrize(
    ("keys", "api", "expected"),
    [
        (
            {"tool": "virtual-staging", "room": "bedroom"},
            "v3",
            f"style: (one of {', '.join(STYLES)})",
        ),
        ({"tool": "virtual-staging", "room": "garage", "style": "modern"}, "v3", ", ".join(ROOMS)),
        ({"tool": "magic-eraser"}, "v3", "valid: image-enhancement, day-to-dusk, item-removal"),
        (
            {"tool": "day-to-dusk", "sky": "blue-hour"},
            "v3",
            "valid: dusk-with-cloud, clear-dusk, golden-hour",
        ),
        ({"tool": "item-removal", "sky": "golden-hour"}, "v3", "its options: none"),
        ({"tool": "item-removal-mask"}, "v3", "use item-removal"),
        ({"tool": "darkness", "darkness": "darker"}, "v3", "two images per photo"),
        # Known, but the tools list lacks it: refused with the tools it offers.
        ({"tool": "sky-change", "sky": "sunset-01"}, "v3", "offered: image-enhancement,"),
        ({"tool": "day-to-dusk"}, "v1", "add 'api: v3'"),
        ({"room": "bedroom"}, "v1", "add 'api: v3'"),
        ({"sky": "golden-hour"}, "v1", "add 'api: v3'"),
    ],
)
def test_bad_v3_options_are_refused_at_their_line_before_anything_is_spent(
    sandbox: Sandbox,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    keys: dict[str, str],
    api: str,
    expected: str,
) -> None:
    """A tool's missing or unknown option: exit 2, file:line naming the key and the valid
    values, no traceback, nothing uploaded or charged."""
    photo_factory(tmp_path / "12-oak-st" / "inside", "a.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api=api, folder_keys={"12-oak-st/inside": keys})
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and f"{manifest}:" in done.stderr
    assert "Traceback" not in done.stderr
    stats = sandbox.stats()
    assert (stats.uploads, stats.charges) == (0, {})


def test_aihd_api_version_overrides_the_manifest_and_a_bad_one_is_refused(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """AIHD_API_VERSION=v3 orders a v1 manifest through v3; v2 is a usage error, exit 2."""
    photo_factory(tmp_path / "12-oak-st" / "inside", "a.jpg")
    manifest = write_manifest(tmp_path, INSIDE)
    bad = aihd(["run", str(manifest), *FAST], sandbox, env={"AIHD_API_VERSION": "v2"})
    assert bad.returncode == 2 and "AIHD_API_VERSION='v2'" in bad.stderr
    done = _run(manifest, sandbox, env={"AIHD_API_VERSION": "v3"})
    assert done["_exit"] == 0, done["_stderr"]
    assert done["orders_spent"] == 1
    assert sandbox.stats().process_posts == 1 and sandbox.stats().order_posts == 0


def test_v3_lost_answers_after_the_charge_are_read_from_the_order_and_never_posted_again(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Every process POST's answer is lost after its charge: GET /v3/order shows the process,
    which is adopted; each photo is charged exactly once, none posted twice."""
    sandbox = make_sandbox(faults=Faults(lost_after_charge_rate=1.0))
    for n in range(3):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3")
    done = _run(manifest, sandbox, "--settle", "600", timeout=90)
    assert (done["_exit"], done["orders_spent"], done["outcomes_unknown"]) == (0, 3, 3)
    assert sandbox.stats().process_posts == 3
    assert _charges(sandbox) == [1, 1, 1]
    rows = ledger_rows(manifest)
    assert all(r.state is State.SUBMITTED and r.image_id for r in rows)


def test_v3_resets_before_the_charge_are_posted_again_once_the_order_shows_idle(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A process POST reset before its charge: the order is idle, so it is sent once more."""
    sandbox = make_sandbox(faults=Faults(order_reset_rate=1.0))
    for n in range(2):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3")
    first = _run(manifest, sandbox, "--settle", "0.2", "--max-duration", "4s")
    assert first["orders_spent"] == 0, first["_stderr"]
    assert sandbox.stats().charges == {}
    sandbox.set_faults(Faults())
    done = _run(manifest, sandbox, "--settle", "0.2")
    assert (done["_exit"], done["orders_spent"]) == (0, 2), done["_stderr"]
    assert _charges(sandbox) == [1, 1]


def test_a_stopped_v3_run_resumes_in_the_same_project_and_pays_nothing_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """--max-orders stops it (exit 4); the next run finds the project in the ledger and
    orders only the rest; a third run spends nothing."""
    for n in range(4):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3")
    first = _run(manifest, sandbox, "--max-orders", "2")
    assert (first["_exit"], first["orders_spent"]) == (4, 2), first["_stderr"]
    second = _run(manifest, sandbox)
    assert (second["_exit"], second["orders_spent"]) == (0, 2), second["_stderr"]
    third = _run(manifest, sandbox)
    assert (third["_exit"], third["orders_spent"]) == (0, 0)
    assert _charges(sandbox) == [1, 1, 1, 1]
    assert len(_projects(manifest)) == 1
    ids = {r.order_id for r in ledger_rows(manifest)}
    assert len(ids) == 4 and sandbox.stats().v3_orders == 4


def test_a_v3_project_made_elsewhere_is_found_by_its_address_not_made_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Two ledgers (two machines) ordering one listing share its project: search first."""
    photo_factory(tmp_path / "12-oak-st" / "inside", "a.jpg")
    one = write_manifest(tmp_path, INSIDE, api="v3", name="one.yaml")
    two = write_manifest(tmp_path, INSIDE, api="v3", name="two.yaml")
    assert _run(one, sandbox)["_exit"] == 0
    assert _run(two, sandbox)["_exit"] == 0
    assert _projects(one)[0][2] == _projects(two)[0][2]


@pytest.mark.slow  # three nights
def test_a_v3_project_deleted_on_the_server_is_made_again_once_and_kept_in_the_ledger(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Deleted between two nights: the next run's 4 photos (uploaded at once) meet "project
    not found"; the listing's project is made again once, with a warning, its id replaces the
    old one in the ledger, and every photo is charged once. A third night makes none."""
    folder = tmp_path / "12-oak-st" / "inside"
    for n in range(2):
        photo_factory(folder, f"p{n}.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3", concurrency=4)
    first = _run(manifest, sandbox)
    assert (first["_exit"], first["orders_spent"]) == (0, 2), first["_stderr"]
    [(_, _, gone)] = _projects(manifest)
    assert sandbox.delete_v3_project(gone)

    for n in range(2, 6):
        photo_factory(folder, f"p{n}.jpg")
    second = _run(manifest, sandbox)
    assert (second["_exit"], second["orders_spent"]) == (0, 4), second["_stderr"]
    assert str(second["_stderr"]).count("is gone from the server") == 1
    [(account, address, made)] = _projects(manifest)
    assert (account, address) == ("default", "12-oak-st") and made != gone
    assert sandbox.stats().requests["POST /v3/project"] == 2
    assert _charges(sandbox) == [1] * 6

    photo_factory(folder, "p6.jpg")
    third = _run(manifest, sandbox)
    assert (third["_exit"], third["orders_spent"]) == (0, 1), third["_stderr"]
    assert "is gone from the server" not in str(third["_stderr"])
    assert _projects(manifest) == [("default", "12-oak-st", made)]
    assert sandbox.stats().requests["POST /v3/project"] == 2
    assert _charges(sandbox) == [1] * 7
    assert [r.state for r in ledger_rows(manifest)] == [State.SUBMITTED] * 7


@pytest.mark.slow
def test_v1_and_v3_runs_sharing_an_account_ledger_share_one_window_and_meet_no_429(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A v1 run and a v3 run of one account, side by side, under one window of 3 per 2 s
    (the emulator counts v1 orders and v3 processes together): 0 429s, each photo paid once."""
    sandbox = make_sandbox(orders_per_window=3, window_seconds=2.0)
    ledger = tmp_path / "account.ledger.sqlite"
    manifests = []
    for version in ("v1", "v3"):
        root = tmp_path / version
        for n in range(4):
            photo_factory(root / "12-oak-st" / "inside", f"{version}-{n}.jpg")
        manifests.append(
            write_manifest(root, INSIDE, orders=3, per_seconds=2.0, ledger=str(ledger), api=version)
        )
    runs = [spawn_aihd(["run", str(m), *FAST, "--json"], sandbox) for m in manifests]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert json.loads(out)["rate_limited"] == 0
    stats = sandbox.stats()
    assert stats.rate_limited == 0
    assert sorted(stats.charges.values()) == [1] * 8
    assert (stats.orders_charged, stats.processes_charged) == (4, 4)


def test_a_v3_run_with_a_refused_key_exits_3_and_spends_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The tools list needs no key, the project search does: a wrong key stops the run, exit 3,
    with the key nowhere in its output and nothing uploaded or charged."""
    photo_factory(tmp_path / "12-oak-st" / "inside", "a.jpg")
    manifest = write_manifest(tmp_path, INSIDE, api="v3")
    wrong = "not-the-key-0123456789"
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, key=wrong)
    assert done.returncode == 3, done.stderr
    assert wrong not in done.stdout + done.stderr and "Traceback" not in done.stderr
    stats = sandbox.stats()
    assert (stats.uploads, stats.charges) == (0, {})


def test_plan_of_a_v3_manifest_checks_the_tools_and_spends_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """`aihd plan` on api: v3 counts the orders a run would spend; no project, order or
    process is created."""
    for n in range(2):
        photo_factory(tmp_path / "12-oak-st" / "inside", f"p{n}.jpg")
    manifest = write_manifest(
        tmp_path, INSIDE, api="v3", folder_keys={"12-oak-st/inside": {"tool": "item-removal"}}
    )
    done = aihd(["plan", str(manifest), "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders"] == 2
    stats = sandbox.stats()
    assert (stats.uploads, stats.v3_orders, stats.charges) == (0, 0, {})
    assert not [r for r in stats.requests if "project" in r]


def test_v3_slugs_follow_the_documented_rule_and_the_vendors_own_body() -> None:
    """Image enhancement indoor builds exactly the body of the vendor's own client (notes 3);
    staging and day to dusk follow widget-<purpose>-<tool> / item-<value>-<widget>."""
    ie = build_spec("Image Enhancement", space="Indoor")
    assert (ie.service, ie.tool, ie.slot) == (
        "v3:tool-image-enhancement",
        "tool-image-enhancement",
        "tool-image-enhancement-input-image",
    )
    assert ie.widgets == (
        ("widget-area-tool-image-enhancement", ("item-indoor-widget-area-tool-image-enhancement",)),
    )
    staging = build_spec("virtual staging", room="Living Room", style="scandinavian")
    assert staging.widgets == (
        (
            "widget-space-tool-virtual-staging",
            ("item-living-room-widget-space-tool-virtual-staging",),
        ),
        (
            "widget-style-tool-virtual-staging",
            ("item-scandinavian-widget-style-tool-virtual-staging",),
        ),
    )
    dusk = build_spec("tool-day-to-dusk", enhancements=["Lawn Touch-Up"])
    assert dusk.widgets == (
        (
            "widget-day-to-dusk-options-tool-day-to-dusk",
            ("item-lawn-touch-up-widget-day-to-dusk-options-tool-day-to-dusk",),
        ),
    )


def test_a_tool_the_live_tools_list_lacks_is_refused_with_the_offered_ones() -> None:
    """A tool not offered (active) by GET /api/tools: refused, listing those that are."""
    with pytest.raises(ToolOptionError, match="offered: image-enhancement, item-removal"):
        check_live("tool-day-to-dusk", ["tool-image-enhancement", "tool-item-removal"])
