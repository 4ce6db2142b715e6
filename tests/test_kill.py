"""The promise that matters most: runs SIGKILLed at random moments never pay twice."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import aihd, ledger_rows, spawn_aihd, write_manifest

KILLS = 20
RUN = ["--no-progress", "--request-timeout", "2", "--settle", "1.0"]


@pytest.mark.slow
def test_random_sigkills_under_faults_charge_every_photo_exactly_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """20 SIGKILLs at random moments, with resets, 5xx and answers lost after the charge.

    A lost answer keeps its photo 'submitting' for --settle seconds while the sandbox has
    already charged it: kills land in that window, the most dangerous one, again and again.
    """
    faults = Faults(
        latency=0.05, reset_rate=0.05, error_rate=0.05, lost_after_charge_rate=0.3, seed=11
    )
    sandbox = make_sandbox(faults=faults)
    folder = tmp_path / "inside"
    photos = [photo_factory(folder, f"p{n:03d}.jpg") for n in range(40)]
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, concurrency=2, attempts=8, max_backoff=0.1
    )
    rng = random.Random(20261127)
    kills = between_charge_and_record = 0
    while kills < KILLS:
        run = spawn_aihd(["run", str(manifest), *RUN], sandbox)
        time.sleep(rng.uniform(0.6, 1.4))
        if run.poll() is not None:
            # Finished before its kill: new photos arrive, as they do in a nightly folder.
            run.communicate()
            start = len(photos)
            photos += [photo_factory(folder, f"q{start + n:03d}.jpg") for n in range(10)]
            continue
        run.kill()
        run.communicate()
        kills += 1
        charged = sandbox.stats().charges
        between_charge_and_record += sum(
            1
            for r in ledger_rows(manifest)
            if r.state is State.SUBMITTING and charged.get(r.sha256)
        )

    for _ in range(5):
        done = aihd(["run", str(manifest), *RUN, "--concurrency", "16"], sandbox, timeout=180)
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stderr

    rows = ledger_rows(manifest)
    assert len(rows) == len(photos)
    assert all(r.state is State.SUBMITTED and r.order_id for r in rows)
    charges = sandbox.stats().charges
    assert {r.sha256: charges.get(r.sha256, 0) for r in rows} == {r.sha256: 1 for r in rows}
    # The dangerous moment was really hit: charged by the API, not yet recorded as submitted.
    assert between_charge_and_record >= 1
