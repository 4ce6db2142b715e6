"""The order window trusts no foreign clock (issue 20, item 7): order times a month ahead of
this machine's clock, in a ledger from another machine, hold the window one window at most."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State, WindowRule, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, write_manifest

PhotoFactory = Callable[..., Path]
MONTH = 30 * 86400.0
WINDOW = {"orders": 10, "per_seconds": 5.0}


def _ledger_from_a_machine_a_month_ahead(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> Path:
    """A ledger whose 10 orders were placed (on this sandbox, really) by another machine whose
    clock ran a month ahead: another boot, wall times 30 days in the future."""
    elsewhere = tmp_path / "elsewhere"
    for n in range(10):
        photo_factory(elsewhere / "inside", f"old{n}.jpg")
    manifest = write_manifest(elsewhere, {"inside": ("indoor", [])}, **WINDOW)  # type: ignore[arg-type]
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    ledger = manifest.with_name("photos.ledger.sqlite")
    with sqlite3.connect(ledger) as conn:
        conn.execute(
            "UPDATE order_posts SET boot = 'another-machine', intent_clock = intent_clock + ?, "
            "intent_wall = intent_wall + ?, answer_clock = answer_clock + ?, "
            "answer_wall = answer_wall + ?",
            (MONTH, MONTH, MONTH, MONTH),
        )
    return ledger


@pytest.mark.slow  # runs the window's 5 s out
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_order_times_a_month_ahead_hold_the_window_for_one_window_at_most(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    """3 new photos under a window of 10 per 5 s: plan says under a minute, and the run orders
    them within its --max-duration of a minute (before: waiting on the future for ever), each
    charged once, with no 429."""
    sandbox = make_sandbox(orders_per_window=10, window_seconds=5.0)
    foreign = _ledger_from_a_machine_a_month_ahead(sandbox, photo_factory, tmp_path)
    if store == "sqlite":
        ledger: str = str(foreign)
    else:
        ledger = request.getfixturevalue("pg_url")
        done = aihd(["ledger", "import", str(foreign), "--into", ledger], None)
        assert done.returncode == 0, done.stderr
    here = tmp_path / "here"
    for n in range(3):
        photo_factory(here / "inside", f"new{n}.jpg")
    manifest = write_manifest(here, {"inside": ("indoor", [])}, ledger=ledger, **WINDOW)  # type: ignore[arg-type]

    # The window as the ledger counts it now: full (the month-ahead orders count as now), for
    # one window at most, never a month.
    opened = open_ledger(ledger if store == "postgresql" else Path(ledger))
    try:
        wait = opened.window_wait(WindowRule(10, 5.0, answer_within=11))
    finally:
        opened.close()
    assert 0 < wait <= 5.0

    plan = aihd(["plan", str(manifest), "--json"], sandbox)
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["orders"] == 3 and planned["seconds"] < 60

    charged_before = sandbox.stats().orders_charged
    run = aihd(["run", str(manifest), *FAST, "--max-duration", "1m", "--json"], sandbox)
    assert run.returncode == 0, run.stderr  # 4 would be: stopped by --max-duration
    assert "order times in the ledger were ahead of this clock" in run.stderr
    summary = json.loads(run.stdout)
    assert summary["orders_spent"] == 3
    stats = sandbox.stats()
    assert stats.orders_charged == charged_before + 3
    assert sorted(stats.charges.values()) == [1] * 13
    assert stats.rate_limited == 0
    opened = open_ledger(ledger if store == "postgresql" else Path(ledger))
    try:
        states = [r.state for r in opened.photos()]
    finally:
        opened.close()
    assert len(states) == 13 and set(states) == {State.SUBMITTED}
