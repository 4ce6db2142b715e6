"""Plan and status say where they read; the progress bar counts this run's work and the window's
time; a catalog that fails every other call is read whole, each call retried on its own."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import api
from pipeline.ordering.window import OrderWindow
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import FAST, aihd, aihd_env, write_manifest

PhotoFactory = Callable[..., Path]


def test_plan_names_the_ledger_and_account_it_reads_and_what_is_paid_in_it(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Under another state folder (another HOME) the plan reads another ledger: it says which,
    and that nothing is paid in it, instead of a bare "nothing was spent"."""
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, ledger=None, account="studio")
    home, other = tmp_path / "state", tmp_path / "elsewhere"
    env = {"XDG_STATE_HOME": str(home)}
    assert aihd(["run", str(manifest), *FAST], sandbox, env=env).returncode == 0
    ledger = home / "aihd" / f"studio@127.0.0.1_{sandbox.url.rsplit(':', 1)[1]}.ledger.sqlite"
    assert ledger.is_file()

    done = aihd(["plan", str(manifest)], sandbox, env=env)
    assert done.returncode == 0, done.stderr
    assert (
        f"ledger: {ledger} (account studio); already paid in this ledger: 3 of this "
        "manifest's photos (3 in all)"
    ) in done.stdout
    plan = json.loads(aihd(["plan", str(manifest), "--json"], sandbox, env=env).stdout)
    assert plan["ledger"] == {"path": str(ledger), "account": "studio", "exists": True, "paid": 3}
    assert plan["orders"] == 0 and plan["paid"] == 3

    elsewhere = aihd(["plan", str(manifest)], sandbox, env={"XDG_STATE_HOME": str(other)})
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert str(other / "aihd") in elsewhere.stdout and "not created yet" in elsewhere.stdout
    assert "already paid in this ledger: 0" in elsewhere.stdout


def test_status_failed_with_none_failed_says_so_in_one_line(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    photo_factory(tmp_path / "inside", "p.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    done = aihd(["status", str(manifest), "--failed"], None)
    assert done.returncode == 0, done.stderr
    ledger = manifest.with_name("photos.ledger.sqlite")
    assert done.stdout == f"no failed photos in this manifest (ledger {ledger})\n"
    status = aihd(["status", str(manifest)], None).stdout
    assert status.startswith(f"ledger: {ledger}\n")


def _in_a_terminal(args: list[str], sandbox: Sandbox) -> tuple[int, str]:
    """Run aihd with stderr on a 160-column pseudo-terminal: what a user sees there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        env=aihd_env(sandbox),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return process.wait(timeout=60), seen.decode(errors="replace")


@pytest.mark.slow
def test_after_a_stop_the_bar_counts_what_is_left_and_the_windows_time(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """5 of 8 ordered, then a re-run with 1 slot of 6 left in a 2-minute window: the bar says
    0 or 1 of 3 (not 5 of 8 done), the 5 done before, and about 2 minutes left."""
    for n in range(8):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, orders=6, per_seconds=120)
    stopped = aihd(["run", str(manifest), *FAST, "--max-orders", "5"], sandbox)
    assert stopped.returncode == 4, stopped.stderr
    args = ["run", str(manifest), "--request-timeout", "3", "--settle", "0.2"]
    code, shown = _in_a_terminal([*args, "--max-duration", "6s"], sandbox)
    assert code == 4, shown  # stopped by the budget, waiting for the window
    bars = re.findall(r"(\d+)/(\d+) \[([^\]]*)\]", shown)
    assert bars, shown
    assert {total for _, total, _ in bars} == {"3"}, shown
    # While it waits for the window: 1 of 3 done, the two left about 2 minutes away.
    waiting = [f for done, _, f in bars if done == "1" and "next slot 11" in f]
    assert waiting, shown
    assert all("about 2 min left at the window's pace; 5 done before" in f for f in waiting)
    assert sandbox.stats().orders_charged == 6


def test_the_windows_time_for_what_is_left() -> None:
    """With the log's times, each order goes when the one a window before it leaves."""
    now = [1000.0]
    window = OrderWindow(3, 60.0, clock=lambda: now[0])
    window.remember([950.0, 970.0])  # two answered 50 s and 30 s ago: one place free
    assert window.seconds_for(0) == 0.0
    assert window.seconds_for(1) == 0.0  # the free place
    assert window.seconds_for(2) == 10.0  # when 950's leaves
    assert window.seconds_for(3) == 30.0  # when 970's leaves
    assert window.seconds_for(4) == 60.0  # when the free place's order leaves
    assert window.seconds_for(7) == 120.0  # a window later again


def test_a_catalog_failing_every_other_call_is_read_whole(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Catalog paths answer 500 every other time (certain, not a rate): each read succeeds on
    its second try. Read as one unit, every try would fail on its second call."""
    photo_factory(tmp_path / "inside", "p.jpg")
    photo_factory(tmp_path / "outside", "q.jpg")
    manifest = write_manifest(
        tmp_path,
        {"inside": ("indoor", ["Add Fire to Fireplace"]), "outside": ("outdoor", [])},
        attempts=3,
    )
    sandbox.set_faults(Faults(paths=("/v1/catalog/",), error_every=2))
    for _ in range(3):
        done = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
        assert done.returncode == 0, done.stderr
        plan = aihd(["plan", str(manifest), "--json"], sandbox)
        assert plan.returncode == 0, plan.stderr
    stats = sandbox.stats()
    assert stats.orders_charged == 2
    # Three reads per command (spaces, then each space's items), 500 on every even request:
    # the first command's spaces read went through at once (request 1), every other read
    # took two tries; read as one unit, each try would have failed on its second read.
    requests = stats.requests
    assert requests[f"GET {api.SPACES_PATH}"] == 1 + 5 * 2
    assert requests[f"GET {api.ITEMS_PATH}"] == 6 * 2 * 2


@pytest.mark.parametrize(
    ("faults", "said"),
    [
        ({"paths": "/v1/"}, "paths must be a list"),
        ({"error_every": 1.5}, "error_every must be a whole number"),
    ],
)
def test_the_fault_switches_are_checked(
    sandbox: Sandbox, faults: dict[str, object], said: str
) -> None:
    import urllib.error
    import urllib.request

    url = f"{sandbox.url}/_sandbox/faults"  # the local emulator, on loopback
    request = urllib.request.Request(url, data=json.dumps(faults).encode(), method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert refused.value.code == 400 and said in refused.value.read().decode()
