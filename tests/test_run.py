"""``aihd run`` end to end: the real CLI in a subprocess against a real local emulator."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows, spawn_aihd, write_manifest
from tests.test_manifest import BAD_MANIFESTS

PhotoFactory = Callable[..., Path]


def _photos(factory: PhotoFactory, folder: Path, count: int, prefix: str = "p") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [factory(folder, f"{prefix}{n:03d}.jpg") for n in range(count)]


def _spent(sandbox: Sandbox) -> tuple[int, int]:
    stats = sandbox.stats()
    return stats.order_posts, stats.uploads


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_run_orders_each_photo_once_and_rerun_sends_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, loop: str
) -> None:
    """The same on either event loop (AIHD_EVENT_LOOP=asyncio is the escape hatch)."""
    env = {"AIHD_EVENT_LOOP": loop}
    _photos(photo_factory, tmp_path / "inside", 6)
    _photos(photo_factory, tmp_path / "outside", 3)
    manifest = write_manifest(
        tmp_path,
        {
            "inside": ("indoor", ["Add Fire to Fireplace", "Add Screen to TV"]),
            "outside": ("outdoor", ["Remove Extra Objects"]),
        },
    )
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["states"] == {"submitted": 9}
    assert summary["orders_spent"] == 9
    stats = sandbox.stats()
    assert sorted(stats.charges.values()) == [1] * 9
    rows = ledger_rows(manifest)
    assert all(r.state is State.SUBMITTED and r.order_id and r.image_id for r in rows)
    assert all(r.eta is not None and r.submitted_at for r in rows)

    before = _spent(sandbox)
    again = aihd(["run", str(manifest), *FAST, "--json"], sandbox, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["orders_spent"] == 0
    assert _spent(sandbox) == before


def test_a_copy_of_a_paid_photo_is_a_duplicate_not_paid_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    (original,) = _photos(photo_factory, tmp_path / "inside", 1)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    (tmp_path / "inside" / "copy.jpg").write_bytes(original.read_bytes())
    second = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert second.returncode == 0, second.stderr
    assert list(sandbox.stats().charges.values()) == [1]
    states = {Path(r.path).name: r.state for r in ledger_rows(manifest)}
    assert states == {"p000.jpg": State.SUBMITTED, "copy.jpg": State.DUPLICATE}


@pytest.mark.slow
def test_sixty_photos_under_a_short_window_meet_no_429(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """10 orders per 1 s, like the API's 10 per 10 min but shorter; the pace is in bench/."""
    sandbox = make_sandbox(orders_per_window=10, window_seconds=1.0)
    _photos(photo_factory, tmp_path / "inside", 60)
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, orders=10, per_seconds=1.0, concurrency=8
    )
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, timeout=180)
    assert done.returncode == 0, done.stderr
    stats = sandbox.stats()
    assert stats.rate_limited == 0
    assert sorted(stats.charges.values()) == [1] * 60
    assert json.loads(done.stdout)["rate_limited"] == 0


@pytest.mark.parametrize(
    ("case", "text", "line", "phrase"), BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS]
)
def test_a_bad_manifest_exits_2_naming_its_line_and_spends_nothing(
    sandbox: Sandbox, tmp_path: Path, case: str, text: str, line: int, phrase: str
) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "outside").mkdir()
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 2, (case, done.stderr)
    assert f"bad.yaml:{line}:" in done.stderr
    assert phrase.lower() in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert sandbox.stats().uploads == 0 and sandbox.stats().order_posts == 0


def test_unknown_catalog_name_exits_2_with_valid_names_before_any_upload(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 2)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", ["Add Jacuzzi"])})
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 2
    assert "photos.yaml:" in done.stderr and "'Add Jacuzzi'" in done.stderr
    assert "'Add Fire to Fireplace'" in done.stderr
    assert sandbox.stats().uploads == 0


def test_broken_photos_fail_with_a_reason_and_the_good_ones_are_paid_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "inside"
    good = _photos(photo_factory, folder, 3)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image at all")
    (folder / "cut.jpg").write_bytes(good[0].read_bytes()[:200])
    big = folder / "huge.jpg"
    with big.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(50 * 1024 * 1024 + 1)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert done.returncode == 1, done.stderr
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert {n for n, r in rows.items() if r.state is State.SUBMITTED} == {p.name for p in good}
    reasons = {n: rows[n].error or "" for n in ("empty.jpg", "notes.jpg", "cut.jpg", "huge.jpg")}
    assert all(rows[n].state is State.FAILED for n in reasons)
    assert "empty" in reasons["empty.jpg"]
    assert "not a JPEG" in reasons["notes.jpg"]
    assert "truncated" in reasons["cut.jpg"]
    assert "50 MB" in reasons["huge.jpg"]
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    assert sandbox.stats().uploads == 3


def test_a_wrong_key_exits_3_at_once_spending_nothing_and_never_echoed(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 2)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    canary = "CANARY-7f3a9c-never-print-me"
    log_file = tmp_path / "run.log"
    started = time.monotonic()
    done = aihd(["run", str(manifest), *FAST, "--log-file", str(log_file)], sandbox, key=canary)
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 30
    assert "key" in done.stderr.lower()
    for text in (done.stdout, done.stderr, log_file.read_text()):
        assert canary not in text
    assert sandbox.stats().uploads == 0 and sandbox.stats().order_posts == 0


def test_a_missing_key_is_a_usage_error(tmp_path: Path, photo_factory: PhotoFactory) -> None:
    _photos(photo_factory, tmp_path / "inside", 1)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    done = aihd(["run", str(manifest), *FAST], None)
    assert done.returncode == 2
    assert "AIHD_API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_max_orders_stops_with_exit_4_and_the_rerun_finishes(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 5)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, concurrency=2)
    first = aihd(["run", str(manifest), *FAST, "--max-orders", "2"], sandbox)
    assert first.returncode == 4, first.stderr
    assert sandbox.stats().orders_charged == 2
    # Orders already sent when the budget stopped the run were waited for and recorded.
    states = [r.state for r in ledger_rows(manifest)]
    assert states.count(State.SUBMITTED) == 2 and State.SUBMITTING not in states
    rest = aihd(["run", str(manifest), *FAST], sandbox)
    assert rest.returncode == 0, rest.stderr
    assert sorted(sandbox.stats().charges.values()) == [1] * 5


def test_a_second_run_on_the_same_ledger_leaves_the_first_ones_photos_and_sigterm_exits_130(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Runs share a ledger: the second takes no photo the first has claimed, and no slot."""
    sandbox = make_sandbox(orders_per_window=1, window_seconds=600)
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=1, per_seconds=600)
    first = spawn_aihd(["run", str(manifest), *FAST], sandbox)
    try:
        deadline = time.monotonic() + 60
        while sandbox.stats().orders_charged < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
        assert second.returncode == 0, second.stderr
        # One is paid; the first run's workers claimed the other two as it started.
        assert json.loads(second.stdout)["held_by_other_runs"] == 2
        assert "2 photos are another run's" in second.stderr
        assert sandbox.stats().order_posts == 1 and sandbox.stats().rate_limited == 0
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 130, stderr
    rows = ledger_rows(manifest)
    assert {r.state for r in rows} <= {State.SUBMITTED, State.UPLOADED, State.PENDING}
    assert sum(r.state is State.SUBMITTED for r in rows) == 1
    assert sandbox.stats().orders_charged == 1


def test_run_with_collect_downloads_every_result_and_a_second_collect_nothing(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    # collect polls no order before its eta: a 1 s eta keeps this test short.
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)
    _photos(photo_factory, tmp_path / "inside", 3)
    _photos(photo_factory, tmp_path / "outside", 2)
    manifest = write_manifest(
        tmp_path,
        {"inside": ("indoor", ["Add Screen to TV"]), "outside": ("outdoor", [])},
    )
    done = aihd(["run", str(manifest), *FAST, "--collect", "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["collected"]["completed"] == 5
    files = sorted(p.relative_to(tmp_path / "enhanced") for p in (tmp_path / "enhanced").rglob("*"))
    assert [str(p) for p in files if p.suffix] == [
        "inside/p000.jpg",
        "inside/p001.jpg",
        "inside/p002.jpg",
        "outside/p000.jpg",
        "outside/p001.jpg",
    ]
    rows = ledger_rows(manifest)
    assert all(r.state is State.COMPLETED and r.output_paths for r in rows)

    downloads = sandbox.stats().downloads
    again = aihd(["collect", str(manifest), "--no-progress", "--json"], sandbox)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["downloads"] == 0
    assert sandbox.stats().downloads == downloads


def test_429s_from_a_tighter_real_window_pause_and_nothing_is_lost_or_paid_twice(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The manifest claims 10 per 1 s but the account allows 3: 429s come, the run adapts."""
    sandbox = make_sandbox(orders_per_window=3, window_seconds=1.0)
    _photos(photo_factory, tmp_path / "inside", 9)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=10, per_seconds=1.0)
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rate_limited"] >= 1
    assert summary["rate_limited"] == sandbox.stats().rate_limited
    assert sorted(sandbox.stats().charges.values()) == [1] * 9
    assert all(r.state is State.SUBMITTED for r in ledger_rows(manifest))


def test_rerun_trusts_size_and_mtime_and_an_edited_photo_is_a_new_order(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Unchanged size and mtime: the stored hash holds, no re-hash. A real edit: a new order."""
    photo, _ = _photos(photo_factory, tmp_path / "inside", 2)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    stat = photo.stat()
    # Same size, same mtime, bytes that are no image: a re-run that read it would fail it.
    photo.write_bytes(bytes(stat.st_size))
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    quiet = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["orders_spent"] == 0
    # Edited for real (a new mtime): a new identity, ordered once more.
    photo_factory(tmp_path / "inside", photo.name)
    edited = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert edited.returncode == 0, edited.stderr
    assert json.loads(edited.stdout)["orders_spent"] == 1
    assert sandbox.stats().orders_charged == 3


def test_status_and_export_show_what_the_run_did(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 2)
    (tmp_path / "inside" / "bad.jpg").write_bytes(b"nope")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", ["Add Fire to Fireplace"])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 1

    status = aihd(["status", str(manifest)], None)
    assert status.returncode == 0, status.stderr
    inside = next(line for line in status.stdout.splitlines() if line.startswith("inside"))
    assert inside.split()[1:] == ["0", "0", "0", "0", "2", "0", "0", "1"]  # unknown: 4th
    assert "outcome some-failed" in status.stdout

    out = tmp_path / "orders.jsonl"
    export = aihd(["export", str(manifest), "--format", "jsonl", "-o", str(out)], None)
    assert export.returncode == 0, export.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["bad.jpg"]["state"] == "failed" and "not a JPEG" in rows["bad.jpg"]["error"]
    good = rows["p000.jpg"]
    assert good["state"] == "submitted" and good["order_id"] and good["image_id"]
    # As the catalog writes them, though the ledger keys them casefolded (identity unchanged).
    assert good["enhancements"] == ["Add Fire to Fireplace"] and good["folder"] == "inside"
    required = {"path", "folder", "sha256", "space", "enhancements", "state", "order_id"}
    required |= {"image_id", "eta_seconds", "submitted_at", "result_url", "output_path", "attempts"}
    assert required | {"error"} <= set(good)
