"""Three "machines" on one PostgreSQL ledger, SIGKILLed again and again under API faults:
every photo is charged exactly once, and the account's window is never overrun."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import aihd_env, write_manifest
from tests.test_postgres import rows_of

RUN = ["--no-progress", "--request-timeout", "2", "--settle", "0.5"]
MACHINES = 3
KILLS = 8
# Together the machines could send far more than this: the window is what binds them.
ORDERS, PER_SECONDS = 6, 2.0


# Each machine sees only its own copy of the share, as on separate hosts: its own mount
# namespace hides the other copies (root can; elsewhere all copies stay visible).
def _can_isolate() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    tried = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return tried.returncode == 0


ISOLATE = _can_isolate()


def machine(root: Path, k: int, url: str, sandbox: Sandbox) -> subprocess.Popen[str]:
    """Start machine ``k``'s run of its own manifest, over its own copy of the photos."""
    argv = [sys.executable, "-m", "pipeline", "run", str(root / f"m{k}" / "photos.yaml"), *RUN]
    if ISOLATE:
        others = [str(root / f"m{j}") for j in range(MACHINES) if j != k]
        hide = " && ".join(f'mount -t tmpfs tmpfs "{o}"' for o in others)
        argv = ["unshare", "--mount", "--", "sh", "-c", f'{hide} && exec "$@"', "sh", *argv]
    return subprocess.Popen(
        argv,
        env=aihd_env(sandbox),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def add_photos(root: Path, photo_factory: Callable[..., Path], start: int, count: int) -> list[str]:
    """New photos on the share: each machine gets the same bytes under its own path."""
    names = []
    for n in range(start, start + count):
        original = photo_factory(root / "share", f"p{n:03d}.jpg")
        for k in range(MACHINES):
            (root / f"m{k}" / "photos").mkdir(parents=True, exist_ok=True)
            shutil.copy2(original, root / f"m{k}" / "photos" / original.name)
        names.append(original.name)
    return names


@pytest.mark.slow
def test_three_machines_killed_at_random_pay_each_photo_once_within_the_window(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    pg_url: str,
) -> None:
    """8 SIGKILLs, each right after the sandbox charged an order, with resets, 5xx and lost
    answers: one charge per photo and no 429 from a window their pace would overrun."""
    faults = Faults(
        latency=0.05, reset_rate=0.03, error_rate=0.03, lost_after_charge_rate=0.2, seed=13
    )
    sandbox = make_sandbox(faults=faults, orders_per_window=ORDERS, window_seconds=PER_SECONDS)
    photos = add_photos(tmp_path, photo_factory, 0, 18)
    for k in range(MACHINES):
        write_manifest(
            tmp_path / f"m{k}", {"photos": ("indoor", [])}, ledger=pg_url, orders=ORDERS,
            per_seconds=PER_SECONDS, concurrency=3, attempts=8, max_backoff=0.1,
        )  # fmt: skip
    rng = random.Random(20261128)
    running = [machine(tmp_path, k, pg_url, sandbox) for k in range(MACHINES)]
    kills = 0
    deadline = time.monotonic() + 240
    while kills < KILLS and time.monotonic() < deadline:
        before = sum(sandbox.stats().charges.values())
        while sum(sandbox.stats().charges.values()) == before and any(
            run.poll() is None for run in running
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))  # just after a charge: its answer may be in flight
        alive = [k for k, run in enumerate(running) if run.poll() is None]
        if alive:
            victim = rng.choice(alive)
            running[victim].kill()
            kills += 1
        else:  # every machine finished before its kill: new photos arrive on the share
            photos += add_photos(tmp_path, photo_factory, len(photos), 6)
        for k, run in enumerate(running):
            if run.poll() is None:
                continue
            _, err = run.communicate()
            assert "Traceback" not in err, f"machine {k} exited {run.returncode}: {err}"
            running[k] = machine(tmp_path, k, pg_url, sandbox)
    for run in running:
        run.kill()
        run.communicate()
    assert kills == KILLS

    for _ in range(5):
        final = [machine(tmp_path, k, pg_url, sandbox) for k in range(MACHINES)]
        errors = [run.communicate(timeout=180)[1] for run in final]
        if all(run.returncode == 0 for run in final):
            break
    assert [run.returncode for run in final] == [0] * MACHINES, errors

    charges = sandbox.stats().charges
    assert len(charges) == len(photos)
    assert sorted(charges.values()) == [1] * len(photos)
    assert sandbox.stats().rate_limited == 0
    rows = rows_of(pg_url)
    charged = [r for r in rows if r.charged]
    assert sorted(r.sha256 for r in charged) == sorted(charges)
    assert all(r.state is State.SUBMITTED for r in charged)
