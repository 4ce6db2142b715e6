"""Collect locks nothing account-wide: collects of other manifests run at once, and two
collects of one order download it once (claims on results, as runs claim photos)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.bootclock import new_owner
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]


def _two_manifests(root: Path, photo_factory: PhotoFactory, per_folder: int) -> tuple[Path, Path]:
    """Two manifests of one account ledger, each with a folder of its own."""
    for folder in ("a", "b"):
        for n in range(per_folder):
            photo_factory(root / folder, f"{folder}{n}.jpg")
    first = write_manifest(root, {"a": ("indoor", [])}, name="a.yaml", ledger="shared.sqlite")
    second = write_manifest(root, {"b": ("indoor", [])}, name="b.yaml", ledger="shared.sqlite")
    return first, second


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, object]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    report: dict[str, object] = json.loads(out)
    return report


def _wait_for_line(log: Path, text: str, process: subprocess.Popen[str]) -> None:
    """Until the process has logged ``text`` (it is then past that step), or fail."""
    deadline = time.monotonic() + 60
    while not (log.is_file() and text in log.read_text(encoding="utf-8")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{log}: no {text!r} within 60 s"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_waiting_collect_of_one_manifest_does_not_block_another_manifests(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The morning's `collect --wait` of a.yaml runs; a rush collect of b.yaml beside it is
    not refused (it was exit 5 while the other held the ledger), and each downloads its own."""
    sandbox = make_sandbox()
    first, second = _two_manifests(tmp_path, photo_factory, per_folder=3)
    for manifest in (first, second):
        assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    sandbox.hold_results(True)  # no result is ready until the rush collect has been refused
    log = tmp_path / "waiting.log"
    args = ["collect", str(first), "--wait", "--timeout", "90s", "--no-progress", "--json"]
    waiting = spawn_aihd([*args, "--log-file", str(log)], sandbox)
    try:
        _wait_for_line(log, "photos with results to fetch", waiting)
        rush = aihd(["collect", str(second), "--no-progress", "--json"], sandbox)
        assert rush.returncode == 0, rush.stderr
        assert json.loads(rush.stdout)["waiting"] == 3  # asked at once: not ready yet
        assert waiting.poll() is None  # the other still waits, beside it
        sandbox.hold_results(False)
        rush = aihd(["collect", str(second), "--wait", "--no-progress", "--json"], sandbox)
        assert rush.returncode == 0, rush.stderr
        assert json.loads(rush.stdout)["completed"] == 3
        assert _finish(waiting)["completed"] == 3
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert sandbox.stats().downloads == 6
    assert sorted(p.name for p in (tmp_path / "enhanced").rglob("*.jpg")) == [
        *(f"a{n}.jpg" for n in range(3)),
        *(f"b{n}.jpg" for n in range(3)),
    ]


@pytest.mark.slow
def test_two_collects_of_the_same_orders_download_each_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Two processes collect one manifest from the same moment, both before any result is
    ready: each result is fetched once, and what one placed the other counts as collected
    elsewhere, not waiting."""
    sandbox = make_sandbox()
    photos = 8
    for n in range(photos):
        photo_factory(tmp_path / "in", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"in": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    # Results become ready only once both collects have listed the photos they will collect:
    # the two overlap for certain, however slowly either starts.
    sandbox.hold_results(True)
    args = ["collect", str(manifest), "--wait", "--timeout", "90s", "--no-progress", "--json"]
    logs = [tmp_path / f"collect-{n}.log" for n in range(2)]
    both = [spawn_aihd([*args, "--log-file", str(log)], sandbox) for log in logs]
    try:
        for log, process in zip(logs, both, strict=True):
            _wait_for_line(log, "photos with results to fetch", process)
        sandbox.hold_results(False)
        reports = [_finish(process) for process in both]
    finally:
        for process in both:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert sandbox.stats().downloads == photos
    assert sum(int(r["completed"]) for r in reports) == photos  # type: ignore[call-overload]
    assert all(r["waiting"] == 0 and r["failed"] == 0 for r in reports)
    for report in reports:
        assert int(report["completed"]) + int(report["elsewhere"]) == photos  # type: ignore[call-overload]
    assert sorted(p.name for p in (tmp_path / "enhanced").rglob("*") if p.is_file()) == sorted(
        f"p{n}.jpg" for n in range(photos)
    )


# The claims themselves, on both stores -------------------------------------------------------


def _found(n: int) -> FoundPhoto:
    options = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())
    return FoundPhoto(f"/photos/in/p{n}.jpg", "in", 1, 1, f"{n:064x}", options)


def test_a_result_claim_holds_against_a_live_collect_and_passes_from_a_dead_one(
    location: Path | str,
) -> None:
    first, second = open_ledger(location), open_ledger(location)
    try:
        (row,) = first.record_found([_found(1)])
        first.owner, second.owner = new_owner(), new_owner()
        assert first.claim_result(row.id)
        assert first.claim_result(row.id)  # its own again
        assert not second.claim_result(row.id)  # a live collect (this process) holds it
        first.release_result_claims()
        assert second.claim_result(row.id)
        # A holder that was a process of this host that is gone: taken over at once.
        dead: Ledger = first
        dead.owner = _dead_owner()
        second.release_result_claims()
        assert dead.claim_result(row.id)
        assert second.claim_result(row.id)
    finally:
        first.close()
        second.close()


def _dead_owner() -> str:
    """An owner name of this host and boot whose process has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    host, boot, _pid, tag = new_owner().split("|")
    return f"{host}|{boot}|{process.pid}|{tag}"


def test_delivers_record_and_the_photo_folders_read_the_same_on_both_stores(
    location: Path | str,
) -> None:
    """What deliver wrote is known by content; where photos are is known by folder."""
    ledger = open_ledger(location)
    try:
        ledger.record_found([_found(1), _found(2)])
        assert ledger.photo_folders() == [("", "in", "/photos/in/")]
        assert ledger.delivered(["a" * 64, "b" * 64]) == set()
        ledger.record_delivered([("a" * 64, "/delivery/x/01.jpg")])
        ledger.record_delivered([("a" * 64, "/delivery/y/01.jpg")])  # the same bytes again
        assert ledger.delivered(["a" * 64, "b" * 64]) == {"a" * 64}
        # What a file was made from: kept, never wiped by a record without it (disclosure.csv).
        assert ledger.delivered_made_from(["a" * 64]) == {}
        ledger.record_delivered([("b" * 64, "/delivery/x/02.jpg")], {"b" * 64: "key-b"})
        ledger.record_delivered([("a" * 64, "/delivery/x/01.jpg")], {"a" * 64: "key-a"})
        ledger.record_delivered([("a" * 64, "/delivery/z/01.jpg")])
        made = ledger.delivered_made_from(["a" * 64, "b" * 64, "c" * 64])
        assert made == {"a" * 64: "key-a", "b" * 64: "key-b"}
    finally:
        ledger.close()
