"""``aihd serve`` beside others on the account: a nightly ``run`` on the same ledger, and a
second ``serve`` on another "machine" sharing one PostgreSQL ledger. One window for all of
them (no 429), one order per photo, and a webhook reaching either machine acted on once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Sandbox, Webhooks
from tests.cli_helpers import aihd, write_manifest
from tests.serve_helpers import rows_of, spawn_serve, wait_until

ORDERS, PER_SECONDS = 6, 3.0  # far less than the two together would send


@pytest.mark.slow
def test_a_run_beside_serve_shares_the_window_and_pays_each_photo_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Two manifests over their own folders and one shared folder, one account ledger: serve
    takes one, the nightly run the other, at once. No 429; each photo charged once."""
    sandbox = make_sandbox(orders_per_window=ORDERS, window_seconds=PER_SECONDS, eta_seconds=2)
    shared = tmp_path / "shared"
    photos = [photo_factory(shared, f"s{n}.jpg") for n in range(6)]
    ledger = tmp_path / "account.ledger.sqlite"
    manifests = []
    for name in ("studio", "nightly"):
        root = tmp_path / name
        photos += [photo_factory(root / "own", f"{name}{n}.jpg") for n in range(8)]
        (root / "shared").symlink_to(shared)
        manifests.append(
            write_manifest(
                root,
                {"own": ("indoor", []), "shared": ("indoor", [])},
                ledger=str(ledger),
                orders=ORDERS,
                per_seconds=PER_SECONDS,
                concurrency=3,
            )
        )
    served = spawn_serve([manifests[0]], sandbox)
    run = aihd(["run", str(manifests[1]), "--no-progress", "--settle", "0.5"], sandbox, timeout=180)
    assert run.returncode == 0, run.stderr
    studio_rows = lambda: [r for r in rows_of(ledger) if "/studio/own/" in r.path]  # noqa: E731
    wait_until(
        lambda: len(studio_rows()) == 8 and {r.state for r in studio_rows()} == {State.COMPLETED},
        timeout=120,
        what="serve's own photos collected",
    )
    # A shared photo the run found held by serve is serve's to order: under load it may still
    # wait for the window when serve's own are done. Every photo paid, then the stop.
    wait_until(
        lambda: len({r.sha256 for r in rows_of(ledger) if r.charged}) == len(photos),
        timeout=120,
        what="every photo charged, by serve or the run",
    )
    code, _ = served.stop()
    assert code == 0, served.stderr()
    stats = sandbox.stats()
    assert stats.rate_limited == 0
    paid = {r.sha256 for r in rows_of(ledger) if r.charged}
    assert len(paid) == len(photos)
    assert stats.charges == dict.fromkeys(paid, 1)


@pytest.mark.slow
def test_two_serves_on_one_postgresql_ledger_order_once_and_act_on_each_webhook_once(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
    pg_url: str,
) -> None:
    """Two "machines" watch the same folders through one PostgreSQL ledger; the dashboard's
    webhooks reach them in turn, each twice (to both). Each photo is charged once, its result
    downloaded once, and no 429 is met."""
    sandbox = make_sandbox(orders_per_window=ORDERS, window_seconds=PER_SECONDS, eta_seconds=2)
    (tmp_path / "inside").mkdir()
    manifest = write_manifest(
        tmp_path,
        {"inside": ("indoor", [])},
        ledger=pg_url,
        orders=ORDERS,
        per_seconds=PER_SECONDS,
        concurrency=3,
    )
    one = spawn_serve([manifest], sandbox, webhooks=False)
    two = spawn_serve([manifest], sandbox, webhooks=False)
    sandbox.set_webhooks(Webhooks(urls=(one.hooks, two.hooks), duplicates=1))
    photos = [photo_factory(tmp_path / "inside", f"p{n}.jpg") for n in range(16)]
    wait_until(
        lambda: (
            len(rows_of(pg_url)) == len(photos)
            and {r.state for r in rows_of(pg_url)} == {State.COMPLETED}
        ),
        timeout=180,
        what="every photo collected",
    )
    reads = [s.metric('aihd_result_reads_total{cause="webhook"}') for s in (one, two)]
    accepted = [s.metric('aihd_webhooks_total{outcome="accepted"}') for s in (one, two)]
    for served in (one, two):
        code, _ = served.stop()
        assert code == 0, served.stderr()
    stats = sandbox.stats()
    rows = rows_of(pg_url)
    assert stats.charges == {r.sha256: 1 for r in rows}
    assert stats.rate_limited == 0
    assert stats.downloads == len(photos)  # each result fetched once, by one machine
    assert all(accepted) and sum(accepted) == 2 * len(photos)  # every webhook reached both
    assert sum(reads) >= len(photos)
    outputs = [Path(p) for r in rows for p in r.output_paths]
    assert len(outputs) == len(photos) and all(p.is_file() for p in outputs)
