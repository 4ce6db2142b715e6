"""SIGTERM at each stage of a photo's day under ``aihd serve``, then a restart: the service
exits 0 within its stop timeout, leaves no half-written file and no intent whose answer it
could have recorded, and every photo ends collected and charged exactly once.

Each stage is made certain by a sandbox switch that holds that very moment open (an upload in
flight, an order POST sent and not charged, a charged order's answer held back, a result
download under way), not hoped for.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox, SandboxStats
from tests.cli_helpers import write_manifest
from tests.serve_helpers import (
    STOP_LIMIT_SECONDS,
    all_completed,
    rows_of,
    spawn_serve,
    wait_until,
)

PHOTOS = 4
RESULTS = "GET /_sandbox/results/{generated_id}.jpg"
UPLOADS = "POST /v1/order/image"


@dataclasses.dataclass(frozen=True)
class Stage:
    faults: Faults
    reached: Callable[[SandboxStats], bool]  # the moment is open now
    extra: tuple[str, ...] = ()


STAGES = {
    # Watching and looking, before anything is taken: a quiet period longer than the wait.
    "scan": Stage(Faults(), lambda s: True, ("--quiet-period", "4s")),
    "upload": Stage(Faults(upload_delay=60), lambda s: s.requests.get(UPLOADS, 0) >= 1),
    # The intent is on disk and its POST on its way; the API charges 2 s later, within the
    # stop's drain: the answer is recorded before the service exits.
    "intent": Stage(Faults(order_delay=2), lambda s: s.order_posts >= 1 and not s.orders_charged),
    # Charged, its answer held back past the drain: cut as a kill would, its intent on disk
    # (`submitting`: it may have charged), never ordered again, settled from the order's
    # details at the restart.
    "post": Stage(Faults(hold_after_charge_rate=1.0, hold_seconds=60), lambda s: s.holding >= 1),
    "collect": Stage(Faults(download_delay=60), lambda s: s.requests.get(RESULTS, 0) >= 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigterm_at_each_stage_then_a_restart_charges_every_photo_once(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    stage: str,
) -> None:
    chosen = STAGES[stage]
    folder = tmp_path / "inside"
    photos = [photo_factory(folder, f"p{n}.jpg", size=(160, 120)) for n in range(PHOTOS)]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, concurrency=2)
    ledger = tmp_path / "photos.ledger.sqlite"
    # An eta of 2 s: the restart polls the orders the first service's webhooks announced.
    sandbox = make_sandbox(faults=chosen.faults, eta_seconds=2, time_scale=0.02)

    served = spawn_serve([manifest], sandbox, *chosen.extra)
    if stage == "scan":
        wait_until(lambda: "listening" in served.stderr())
    else:
        wait_until(lambda: chosen.reached(sandbox.stats()), what=f"the {stage} stage")
    at_signal = sandbox.stats()
    code, seconds = served.stop()
    assert code == 0, served.stderr()
    # The unit's stop timeout (jobs/aihd-serve.service) is a promise, not a speed figure.
    assert seconds < STOP_LIMIT_SECONDS, served.stderr()
    assert not list((tmp_path / "enhanced").rglob(".*.part-*"))  # no half-written result
    if stage == "scan":
        assert at_signal.uploads == 0  # stopped before any photo was taken
    if stage == "intent":
        # The POST in flight at the signal was answered and recorded before the exit.
        charged = [r for r in rows_of(ledger) if r.charged]
        assert charged and all(r.state is State.SUBMITTED for r in charged)
        assert not [r for r in rows_of(ledger) if r.state is State.SUBMITTING]
    if stage == "post":
        held = [r for r in rows_of(ledger) if r.state in (State.SUBMITTING, State.UNKNOWN)]
        assert held and not [r for r in held if r.charged], [r.state for r in rows_of(ledger)]

    sandbox.set_faults(Faults())
    again = spawn_serve([manifest], sandbox)
    wait_until(all_completed(ledger, PHOTOS), timeout=120, what="every photo collected")
    code, seconds = again.stop()
    assert code == 0, again.stderr()
    rows = rows_of(ledger)
    assert sandbox.stats().charges == {r.sha256: 1 for r in rows}
    assert sandbox.stats().rate_limited == 0
    for row in rows:
        assert [Path(p).is_file() for p in row.output_paths] == [True]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos} == before
