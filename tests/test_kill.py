"""The promise that matters most: runs SIGKILLed at any moment never pay twice."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State, open_ledger
from pipeline.ledger.records import PhotoRow
from pipeline.sandbox import Faults, Sandbox
from tests.cli_helpers import aihd, ledger_rows, spawn_aihd, write_manifest

KILLS = 20  # every other one while the sandbox holds a charged order's answer back
# A held answer is let go only when its client dies, so no timeout of the client's ends it.
RUN = ["--no-progress", "--request-timeout", "30", "--settle", "1.0"]
HELD_WITHIN_SECONDS = 60.0
# Runs sharing a ledger count a killed run's unanswered orders in the account's window until
# their requests must have ended (twice the request timeout, and 5 s): a short timeout here
# keeps the next round from waiting a minute for the last round's kills.
RUN_SHARED = ["--no-progress", "--request-timeout", "3", "--settle", "1.0"]


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
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_sigkills_between_charge_and_record_and_at_random_charge_every_photo_exactly_once(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    api: str,
) -> None:
    """20 SIGKILLs under resets, 5xx and lost answers: half at random moments, half while the
    sandbox holds a charged order's (v3: process's) answer (charged, not yet recorded). Then
    every photo is submitted and charged exactly once, on either API version."""
    faults = Faults(
        latency=0.05, reset_rate=0.05, error_rate=0.05, lost_after_charge_rate=0.3, seed=11
    )
    holding = dataclasses.replace(faults, hold_after_charge_rate=0.3)
    sandbox = make_sandbox(faults=faults)
    folder = tmp_path / "inside"
    photos = [photo_factory(folder, f"p{n:03d}.jpg") for n in range(40)]
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, concurrency=2, attempts=8, max_backoff=0.1, api=api
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


@pytest.mark.slow
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_three_runs_sharing_one_ledger_killed_at_random_charge_every_photo_exactly_once(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    api: str,
) -> None:
    """Three manifests over one shared folder and one account ledger, run side by side under
    faults and a window tighter than their sum: SIGKILLed together, half the time while the
    sandbox holds a charged order's answer. Then every photo is charged exactly once, with no
    429, whichever run paid for it."""
    faults = Faults(
        latency=0.03, reset_rate=0.03, error_rate=0.03, lost_after_charge_rate=0.2, seed=7
    )
    holding = dataclasses.replace(faults, hold_after_charge_rate=0.3)
    sandbox = make_sandbox(faults=faults, orders_per_window=6, window_seconds=1.5)
    shared = tmp_path / "shared"
    photos = [photo_factory(shared, f"s{n:03d}.jpg") for n in range(24)]
    ledger = tmp_path / "account.ledger.sqlite"
    manifests = []
    for name in ("a", "b", "c"):
        root = tmp_path / name
        photos += [photo_factory(root / "own", f"{name}{n}.jpg") for n in range(4)]
        (root / "shared").symlink_to(shared)
        manifests.append(
            write_manifest(
                root,
                {"own": ("indoor", []), "shared": ("indoor", [])},
                ledger=str(ledger),
                orders=6,
                per_seconds=1.5,
                concurrency=3,
                attempts=8,
                max_backoff=0.1,
                api=api,
            )
        )
    rng = random.Random(20261128)
    for round_ in range(6):
        at_a_held_answer = round_ % 2 == 0
        sandbox.set_faults(
            dataclasses.replace(holding if at_a_held_answer else faults, seed=7 + round_)
        )
        held_before = sandbox.stats().held
        runs = [spawn_aihd(["run", str(m), *RUN_SHARED], sandbox) for m in manifests]
        if at_a_held_answer:
            deadline = time.monotonic() + HELD_WITHIN_SECONDS
            while sandbox.stats().held <= held_before and any(r.poll() is None for r in runs):
                assert time.monotonic() < deadline, "the sandbox never held an order's answer"
                time.sleep(0.01)
        else:
            time.sleep(rng.uniform(0.5, 1.5))
        for run in runs:
            run.kill()
            run.communicate()

    sandbox.set_faults(faults)
    for manifest in manifests:
        for _ in range(5):
            done = aihd(["run", str(manifest), *RUN_SHARED], sandbox, timeout=180)
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
    rows = {r.path: r for r in ledger_rows_of(ledger)}
    charges = sandbox.stats().charges
    paid = {r.sha256 for r in rows.values() if r.state is State.SUBMITTED}
    assert len(paid) == len(photos)  # every photo's content paid for...
    assert {sha: charges.get(sha, 0) for sha in paid} == dict.fromkeys(paid, 1)  # ...once
    assert sandbox.stats().rate_limited == 0


def ledger_rows_of(path: Path) -> list[PhotoRow]:
    ledger = open_ledger(path)
    try:
        return ledger.photos()
    finally:
        ledger.close()
