"""Odd keys, files and ports end in one clear line and the right exit code, nothing spent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.bootclock import new_owner
from pipeline.errors import LedgerBusy
from pipeline.ledger import open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, aihd_process, write_manifest

PhotoFactory = Callable[..., Path]


def _manifest(tmp_path: Path, photo_factory: PhotoFactory) -> Path:
    photo_factory(tmp_path / "inside", "room.jpg")
    return write_manifest(tmp_path, {"inside": ("indoor", [])})


def _nothing_spent(sandbox: Sandbox) -> None:
    stats = sandbox.stats()
    assert stats.uploads == 0 and stats.order_posts == 0


def _one_clear_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("aihd: error:")]
    return line


# Item 2: keys no API would issue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("abcd\x01efgh-secret", "control character (U+0001) at position 5"),
        ("abcd\nefgh-secret", "control character (U+000A) at position 5"),
        ("abcdéfgh-secret", "not ASCII (U+00E9) at position 5"),
        ("x", "1 characters long"),
        ("abc1234", "7 characters long"),
    ],
    ids=["soh", "newline", "non-ascii", "one", "seven"],
)
def test_a_key_no_api_would_issue_is_refused_without_echo(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, key: str, said: str
) -> None:
    """Exit 2 naming the variable and what is wrong, never the key, before any request."""
    manifest = _manifest(tmp_path, photo_factory)
    done = aihd(["run", str(manifest), *FAST], sandbox, key=key)
    line = _one_clear_line(done, 2)
    assert "AIHD_API_KEY" in line and said in line
    assert key not in done.stderr + done.stdout
    _nothing_spent(sandbox)
    assert sandbox.stats().requests == {}


# Item 8: a symlinked ledger ----------------------------------------------------------------------


def test_a_symlinked_ledger_takes_the_lock_of_the_ledger_it_names(tmp_path: Path) -> None:
    """Two names for one ledger are one lock: the second holder is told it is busy."""
    real = tmp_path / "real.sqlite"
    link = tmp_path / "elsewhere" / "link.sqlite"
    link.parent.mkdir()
    first = open_ledger(real)
    link.symlink_to(real)
    second = open_ledger(link)
    try:
        first.acquire_run_lock("the first run")
        with pytest.raises(LedgerBusy, match="the first run"):
            second.acquire_run_lock("the second run")
    finally:
        second.close()
        first.close()


def test_a_collect_through_a_symlinked_ledger_meets_the_claims_made_on_the_real_path(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Two names for one ledger are one ledger: while a collect on the real path holds a
    photo's results (collects share a ledger through claims, with no lock), a collect of
    `link` leaves it to that collect and downloads nothing; once it is let go, it goes on."""
    # Results ready the moment the order is: the first collect meets the claim, never an
    # order still processing (which a collect started at once would find).
    sandbox = make_sandbox(eta_seconds=0, time_scale=0)
    manifest = _manifest(tmp_path, photo_factory)
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    real = manifest.with_name("photos.ledger.sqlite")
    link = tmp_path / "link.sqlite"
    link.symlink_to(real)
    held = open_ledger(real)
    try:
        held.owner = new_owner()  # this test process: alive, so its claim holds
        (row,) = held.photos()
        assert held.claim_result(row.id)
        done = aihd(["collect", str(link), "--no-progress", "--json"], sandbox)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["completed"], report["held"], report["downloads"]) == (0, 1, 0)
        assert sandbox.stats().downloads == 0
        held.release_result_claims()
    finally:
        held.close()
    done = aihd(["collect", str(link), "--no-progress", "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["completed"] == 1
    assert sandbox.stats().downloads == 1
    assert sandbox.stats().orders_charged == 1  # collecting never orders


# Item 9: a FIFO manifest, a full disk under the log, 1.0e308 -------------------------------------


@pytest.mark.slow
def test_a_fifo_given_as_the_manifest_is_refused_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    """`aihd plan FIFO` does not hang: exit 2, the path named."""
    fifo = tmp_path / "manifest.yaml"
    os.mkfifo(fifo)
    done = aihd_process(["plan", str(fifo), "--sandbox"], None, timeout=60)  # a hang ends here
    line = _one_clear_line(done, 2)
    assert str(fifo) in line and "not a file" in line


def test_a_log_file_on_a_full_disk_is_one_clear_error_and_nothing_is_spent(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """/dev/full as --log-file: exit 2 saying the disk is full, no logging traceback."""
    manifest = _manifest(tmp_path, photo_factory)
    done = aihd(["run", str(manifest), *FAST, "--log-file", "/dev/full"], sandbox)
    line = _one_clear_line(done, 2)
    assert "--log-file /dev/full" in line and "No space left on device" in line
    _nothing_spent(sandbox)


def test_per_seconds_written_as_1e308_is_a_number_and_out_of_range(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """YAML 1.1 reads 1.0e308 as text; a manifest reads the number, and refuses it by range."""
    manifest = _manifest(tmp_path, photo_factory)
    text = manifest.read_text().replace("per_seconds: 600", "per_seconds: 1.0e308")
    manifest.write_text(text)
    done = aihd(["run", str(manifest), *FAST], sandbox)
    line = _one_clear_line(done, 2)
    assert f"{manifest}:3: rate_limit.per_seconds: must be at most 86400" in line
    assert "not text" not in line
    _nothing_spent(sandbox)


# Item 10: control characters in the manifest -----------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"], ids=["nul", "bel", "esc"])
def test_a_control_character_in_the_manifest_is_exit_2_with_its_line(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, char: str
) -> None:
    """Valid UTF-8 with a NUL or BEL: exit 2, file:line, no PyYAML traceback."""
    manifest = _manifest(tmp_path, photo_factory)
    lines = manifest.read_text().splitlines()
    lines[3] += f"  # a comment{char}"
    manifest.write_text("\n".join(lines) + "\n")
    done = aihd(["run", str(manifest), *FAST], sandbox)
    line = _one_clear_line(done, 2)
    assert f"{manifest}:4: a control character (U+{ord(char):04X})" in line
    _nothing_spent(sandbox)


# Item 12: a taken port ---------------------------------------------------------------------------


@pytest.mark.slow
def test_aihd_sandbox_on_a_taken_port_is_exit_2_and_says_so() -> None:
    """The port is held by another socket: one line naming it and the way out."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    line = _one_clear_line(done, 2)
    assert f"127.0.0.1:{port}" in line and "in use" in line and "--port 0" in line
