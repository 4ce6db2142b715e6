"""The promise that matters most: runs SIGKILLed at any moment never pay twice."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import aihd, ledger_rows, spawn_aihd, write_manifest

KILLS = 20  # every other one while the sandbox holds a charged order's answer back
# A held answer is let go only when its client dies, so no timeout of the client's ends it.
RUN = ["--no-progress", "--request-timeout", "30", "--settle", "1.0"]
HELD_WITHIN_SECONDS = 60.0


def _until_held(run: subprocess.Popen[str], sandbox: Sandbox, held_before: int) -> bool:
    """Poll until this run has an order charged and its answer held (True), or it exits."""
    deadline = time.monotonic() + HELD_WITHIN_SECONDS
    while run.poll() is None:
        stats = sandbox.stats()
        if stats.held > held_before and stats.holding >= 1:
            return True
        assert time.monotonic() < deadline, "the sandbox never held an order's answer"
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_sigkills_between_charge_and_record_and_at_random_charge_every_photo_exactly_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """20 SIGKILLs under resets, 5xx and lost answers: half at random moments, half while the
    sandbox holds a charged order's answer (charged, not yet recorded). Then every photo is
    submitted and charged exactly once."""
    faults = Faults(
        latency=0.05, reset_rate=0.05, error_rate=0.05, lost_after_charge_rate=0.3, seed=11
    )
    holding = dataclasses.replace(faults, hold_after_charge_rate=0.3)
    sandbox = make_sandbox(faults=faults)
    folder = tmp_path / "inside"
    photos = [photo_factory(folder, f"p{n:03d}.jpg") for n in range(40)]
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, concurrency=2, attempts=8, max_backoff=0.1
    )
    rng = random.Random(20261127)
    kills = runs = 0
    while kills < KILLS:
        at_a_held_answer = kills % 2 == 0
        runs += 1  # each run its own story: a replayed one would fail the same way again
        sandbox.set_faults(
            dataclasses.replace(holding if at_a_held_answer else faults, seed=11 + runs)
        )
        held_before = sandbox.stats().held
        run = spawn_aihd(["run", str(manifest), *RUN], sandbox)
        if at_a_held_answer:
            _until_held(run, sandbox, held_before)
        else:
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
        if at_a_held_answer:
            # The dangerous moment, certainly hit: charged by the API, not recorded as
            # submitted (the intent is on disk, the answer never came).
            charged = sandbox.stats().charges
            assert any(
                r.state is State.SUBMITTING and charged.get(r.sha256) for r in ledger_rows(manifest)
            )

    sandbox.set_faults(faults)
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
