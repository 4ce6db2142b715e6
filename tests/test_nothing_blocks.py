"""Nothing blocks (issue 20, item 6): only regular files are opened, and SIGTERM ends a run
within 10 s whatever it is doing, with exit 130, the ledger consistent and every photo charged
once by the next run. Real FIFOs, real signals, the real `aihd` in a subprocess; each state is
made certain before the signal (the sandbox holds the request, or the process is seen in it).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import FAST, aihd, aihd_process, ledger_rows, spawn_aihd, write_manifest
from tests.review_helpers import INSIDE, OUTSIDE, collected_listing

pytestmark = pytest.mark.slow  # real processes, real signals, waits of seconds
PhotoFactory = Callable[..., Path]
STOP_WITHIN_SECONDS = 10.0  # the bound, from the signal to the process's exit
# A request timeout and a settle time far longer than any wait here: a run that ends within
# 10 s does so because of the signal, not because a request or a settle ran out.
LONG = ["--no-progress", "--request-timeout", "60", "--settle", "60"]
FOUND_WITHIN_SECONDS = 60.0
# Unknown: a lost answer's photo, held until its order's details settle it (the next run).
SETTLED_STATES = {
    State.PENDING,
    State.UPLOADED,
    State.SUBMITTING,
    State.UNKNOWN,
    State.SUBMITTED,
    State.FAILED,
}


def _until(run: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """Poll until ``ready()``; the run must still be running then."""
    deadline = time.monotonic() + FOUND_WITHIN_SECONDS
    while not ready():
        assert run.poll() is None, f"the run ended before {what}: {run.communicate()[1]}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)
    assert run.poll() is None, f"the run ended before {what}"


def _sigterm(run: subprocess.Popen[str]) -> tuple[int, float, str]:
    """Send SIGTERM; (exit code, seconds from the signal to the exit, stderr)."""
    signalled = time.monotonic()
    run.send_signal(signal.SIGTERM)
    try:
        _, stderr = run.communicate(timeout=STOP_WITHIN_SECONDS + 50)
    except subprocess.TimeoutExpired:
        run.kill()
        _, stderr = run.communicate()
        pytest.fail(f"still running a minute after SIGTERM: {stderr[-2000:]}")
    return run.returncode, time.monotonic() - signalled, stderr


def _stopped_cleanly(run: subprocess.Popen[str], manifest: Path | None = None) -> str:
    code, seconds, stderr = _sigterm(run)
    assert code == 130, stderr
    assert seconds <= STOP_WITHIN_SECONDS, f"{seconds:.1f} s from SIGTERM to exit"
    assert "Traceback" not in stderr
    if manifest is not None:
        _consistent(manifest)
    return stderr


def _consistent(manifest: Path) -> None:
    """Rows in states a next run resumes from, no claim left held, the run recorded."""
    assert {r.state for r in ledger_rows(manifest)} <= SETTLED_STATES
    with sqlite3.connect(manifest.with_name("photos.ledger.sqlite")) as conn:
        assert (
            conn.execute("SELECT count(*) FROM photos WHERE claimed_by IS NOT NULL").fetchone()[0]
            == 0
        )
        (outcome,) = conn.execute("SELECT outcome FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    assert outcome == "interrupted"


def _charged_once_by_the_next_run(manifest: Path, sandbox: Sandbox, photos: int) -> None:
    sandbox.set_faults(Faults())
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 0, done.stderr
    rows = ledger_rows(manifest)
    assert len(rows) == photos and {r.state for r in rows} == {State.SUBMITTED}
    charges = sandbox.stats().charges
    assert {r.sha256: charges.get(r.sha256) for r in rows} == {r.sha256: 1 for r in rows}


def _photos(photo_factory: PhotoFactory, folder: Path, count: int) -> list[Path]:
    return [photo_factory(folder, f"p{n}.jpg") for n in range(count)]


# Only regular files are opened ------------------------------------------------------------------


def test_a_fifo_and_a_socket_named_like_photos_are_failed_with_a_reason_by_plan_and_run(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Never opened (a FIFO's open would wait for a writer): each is a failed photo saying what
    it is; the 4 photos beside them are ordered, once; plan and run agree."""
    folder = tmp_path / "inside"
    _photos(photo_factory, folder, 4)
    os.mkfifo(folder / "pipe.jpg")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "socket.jpg"))
    try:
        manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
        plan = aihd(["plan", str(manifest), "--sandbox"], None, timeout=60)
        assert plan.returncode == 0, plan.stderr
        assert "4 orders" in plan.stdout
        assert "pipe.jpg: it is a FIFO (named pipe), not a regular file" in plan.stdout
        assert "socket.jpg: it is a socket, not a regular file" in plan.stdout
        done = aihd(["run", str(manifest), *FAST], sandbox, timeout=60)
    finally:
        listener.close()
    assert done.returncode == 1, done.stderr
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert rows["pipe.jpg"].state is State.FAILED and "FIFO" in (rows["pipe.jpg"].error or "")
    assert rows["socket.jpg"].state is State.FAILED and "socket" in (rows["socket.jpg"].error or "")
    assert sorted(sandbox.stats().charges.values()) == [1] * 4


def test_a_photo_swapped_for_a_fifo_before_its_upload_fails_with_the_reason_and_blocks_nothing(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The window (1 order per 8 s) keeps p1's upload seconds after p0's charge: p1 becomes a
    FIFO in between. Its upload opens without waiting and refuses it (before: a hang the run's
    own SIGTERM handler could not end); p0 stays charged once."""
    folder = tmp_path / "inside"
    _, p1 = _photos(photo_factory, folder, 2)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=1, per_seconds=8)
    run = spawn_aihd(["run", str(manifest), *FAST], sandbox)
    try:
        _until(run, lambda: sandbox.stats().orders_charged >= 1, "p0 charged")
        assert sandbox.stats().uploads == 1  # p1 waits for its slot, not yet uploaded
        os.mkfifo(tmp_path / "swap")
        os.replace(tmp_path / "swap", p1)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 1, stderr
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert rows["p0.jpg"].state is State.SUBMITTED
    assert rows["p1.jpg"].state is State.FAILED
    assert "it is a FIFO (named pipe), not a regular file" in (rows["p1.jpg"].error or "")
    assert sandbox.stats().uploads == 1 and list(sandbox.stats().charges.values()) == [1]


def test_a_result_swapped_for_a_fifo_is_refused_by_review_and_deliver_never_waited_on(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """After collect, one result becomes a FIFO: the review page writes (no thumbnail for
    it), and deliver fails that photo saying what it is, delivers the other four, exit 1;
    each a process of its own, so a wait would be a timeout here, not a hang."""
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    for folder in (INSIDE, OUTSIDE):
        assert aihd(["approve", str(manifest), "--folder", folder], None).returncode == 0
    (den,) = [r for r in ledger_rows(manifest) if Path(r.path).name == "den.jpg"]
    result = Path(den.output_paths[0])
    os.mkfifo(tmp_path / "swap")
    os.replace(tmp_path / "swap", result)

    page = aihd_process(["review", str(manifest)], None, timeout=60)
    assert page.returncode == 0, page.stderr
    assert "9 new thumbnails" in page.stderr  # 5 originals, 4 results: none of the FIFO
    done = aihd_process(["deliver", str(manifest)], None, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "it is a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr
    delivered = sorted(p.name for p in (tmp_path / "delivery" / "12-oak-st").iterdir())
    assert len(delivered) == 5 and "disclosure.csv" in delivered
    assert not [name for name in delivered if "den" in name]
    assert sorted(sandbox.stats().charges.values()) == [1] * 5


# SIGTERM ends a run within 10 s, whatever it is doing ---------------------------------------------


def test_sigterm_while_the_catalog_is_read_ends_the_run_and_spends_nothing(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    sandbox = make_sandbox(faults=Faults(stall_rate=1.0, stall_seconds=60))
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: any("catalog" in r for r in sandbox.stats().requests), "the catalog read")
    _stopped_cleanly(run, manifest)
    assert sandbox.stats().uploads == 0
    _charged_once_by_the_next_run(manifest, sandbox, 3)


def _rchar(pid: int) -> int:
    """Bytes the process has read so far (/proc/PID/io), whatever they were read from."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def test_sigterm_while_photos_are_hashed_in_a_thread_ends_the_run_without_finishing_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """256 photos of 49 MB (sparse: JPEG by their bytes, nearly no disk) take tens of seconds
    to hash, in a worker thread; the signal comes once 500 MB were read. The thread stops
    within a chunk (before: the process waited for the whole batch at its exit)."""
    folder = tmp_path / "inside"
    folder.mkdir()
    for n in range(256):
        with (folder / f"big{n:03d}.jpg").open("wb") as photo:
            photo.write(b"\xff\xd8\xff\xe0" + n.to_bytes(4, "big"))
            photo.truncate(49_000_000 - 2)
            photo.seek(0, os.SEEK_END)
            photo.write(b"\xff\xd9")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: _rchar(run.pid) > 500_000_000, "hashing under way")
    _stopped_cleanly(run, manifest)
    assert ledger_rows(manifest) == []  # the batch was never finished: stopped mid-hash
    assert sandbox.stats().uploads == 0


def test_sigterm_while_an_upload_waits_for_its_answer_ends_the_run(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    # Uploads only: each is held a minute unanswered (the catalog reads go through).
    sandbox.set_faults(Faults(stall_rate=1.0, stall_seconds=60, paths=("/v1/order/image",)))
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: sandbox.stats().requests.get("POST /v1/order/image", 0) >= 1, "an upload")
    _stopped_cleanly(run, manifest)
    assert sandbox.stats().order_posts == 0
    _charged_once_by_the_next_run(manifest, sandbox, 3)


def test_sigterm_while_photos_wait_for_the_order_window_ends_the_run(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=1, per_seconds=600)
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: sandbox.stats().orders_charged >= 1, "the window's one order")
    time.sleep(0.5)  # the others are waiting for their slot, ten minutes away
    _stopped_cleanly(run, manifest)
    assert sandbox.stats().order_posts == 1
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})  # the account's wide window
    _charged_once_by_the_next_run(manifest, sandbox, 3)


def test_sigterm_while_lost_answers_settle_ends_the_run_and_the_next_one_pays_nothing_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Every order is charged and its answer lost: the run settles for --settle 60 s."""
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    sandbox.set_faults(Faults(lost_after_charge_rate=1.0))
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: sandbox.stats().orders_charged >= 3, "three lost answers")
    _stopped_cleanly(run, manifest)
    # Each lost answer holds its photo as unknown (it may have been charged: it was).
    assert {r.state for r in ledger_rows(manifest)} == {State.UNKNOWN}
    _charged_once_by_the_next_run(manifest, sandbox, 3)
    assert sandbox.stats().order_posts == 3  # settled by the order's details, never re-posted


@pytest.mark.parametrize("api", ["v1", "v3"])
def test_sigterm_while_a_charged_order_waits_for_its_answer_ends_the_run_within_10_s(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, api: str
) -> None:
    """The sandbox holds a charged order's answer (a minute): the run waits for it a few
    seconds at most, then leaves it ``submitting`` for the next run to settle."""
    _photos(photo_factory, tmp_path / "inside", 3)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, api=api)
    sandbox.set_faults(Faults(hold_after_charge_rate=1.0, hold_seconds=60))
    run = spawn_aihd(["run", str(manifest), *LONG], sandbox)
    _until(run, lambda: sandbox.stats().holding >= 1, "a held answer")
    _stopped_cleanly(run, manifest)
    assert State.SUBMITTING in {r.state for r in ledger_rows(manifest)}
    _charged_once_by_the_next_run(manifest, sandbox, 3)


def test_sigterm_while_collect_waits_for_results_ends_it_within_10_s(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Results ten minutes away: collect --wait sleeps until their eta; SIGTERM ends it."""
    sandbox = make_sandbox(eta_seconds=600, time_scale=1.0)
    _photos(photo_factory, tmp_path / "inside", 2)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    run = spawn_aihd(["collect", str(manifest), "--wait", "--no-progress"], sandbox)
    ledger = manifest.with_name("photos.ledger.sqlite")

    def waiting() -> bool:
        with sqlite3.connect(ledger) as conn:
            started = conn.execute("SELECT count(*) FROM runs WHERE command LIKE 'aihd collect%'")
            return bool(started.fetchone()[0])

    _until(run, waiting, "collect under way")
    time.sleep(0.5)
    _stopped_cleanly(run)
    assert {r.state for r in ledger_rows(manifest)} == {State.SUBMITTED}
    assert sandbox.stats().downloads == 0
    assert sandbox.stats().orders_charged == 2
