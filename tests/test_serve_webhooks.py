"""The sandbox's real webhooks reaching ``aihd serve`` as the real service may send them: each
several times, out of order, replayed later, or posted to a wrong secret; and a webhook naming
an order whose outcome the ledger holds as unknown. A webhook is a hint: a duplicate or replay
charges and fetches nothing more, a wrong secret changes nothing, and no webhook makes a photo
orderable again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Faults, Sandbox, Webhooks
from tests.cli_helpers import write_manifest
from tests.serve_helpers import (
    SECRET,
    all_completed,
    rows_of,
    sha256_of,
    spawn_serve,
    wait_until,
    webhook_json,
)
from tests.webhook_helpers import listening

ORDER_READS = "GET /v1/order/{order_id}"


@pytest.mark.slow
def test_duplicate_late_and_replayed_webhooks_fetch_once_and_a_wrong_secret_nothing(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """The sandbox sends each webhook three times, out of order, to a listener; the test posts
    them to serve: first all to a wrong secret (404, nothing read, nothing fetched), then as
    they came (each order read once, each result fetched once), then all again later (a
    replay: nothing more)."""
    photos = [photo_factory(tmp_path / "inside", f"room{n}.jpg") for n in range(3)]
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    ledger = tmp_path / "photos.ledger.sqlite"
    with listening() as listener:
        hooks = Webhooks(urls=(listener.url,), duplicates=2, out_of_order_seconds=0.5, seed=7)
        sandbox = make_sandbox(webhooks=hooks)
        served = spawn_serve([manifest], sandbox, webhooks=False)
        bodies = listener.wait_for(9, timeout=60)  # 3 orders, 3 copies each
    assert sorted(b["order_id"] for b in bodies) == sorted(
        3 * [r.order_id for r in rows_of(ledger)]
    )
    assert {r.state for r in rows_of(ledger)} == {State.SUBMITTED}

    for body in bodies:  # forged: the right payloads, the wrong secret
        assert served.post(webhook_json(body), secret="x" + SECRET[1:])[0] == 404
    time.sleep(1.0)  # time for anything they could have started
    stats = sandbox.stats()
    assert stats.requests.get(ORDER_READS, 0) == 0 and stats.downloads == 0
    assert {r.state for r in rows_of(ledger)} == {State.SUBMITTED}
    assert served.metric('aihd_webhooks_total{outcome="refused"}') == 9

    for body in bodies:
        status, seconds = served.post(webhook_json(body))
        assert status == 202 and seconds < 1.0
    wait_until(all_completed(ledger, 3), what="collected by webhook")
    done = {
        r.id: (r.output_paths, [sha256_of(Path(p)) for p in r.output_paths])
        for r in rows_of(ledger)
    }

    for body in bodies:  # a replay, once every result is in
        assert served.post(webhook_json(body))[0] == 202
    time.sleep(1.0)
    code, _ = served.stop()
    assert code == 0, served.stderr()
    stats = sandbox.stats()
    assert stats.charges == {sha256_of(p): 1 for p in photos}
    assert stats.order_posts == 3
    assert stats.requests[ORDER_READS] == 3  # one read per order, whatever the copies
    assert stats.downloads == 3
    assert done == {
        r.id: (r.output_paths, [sha256_of(Path(p)) for p in r.output_paths])
        for r in rows_of(ledger)
    }


@pytest.mark.slow
def test_a_webhook_for_an_order_held_unknown_orders_nothing_and_fetches_nothing(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Charged, but the answer never came (held past the stop): the photos' outcomes are
    unsettled. Their real webhooks reach the next serve while their orders' details cannot be
    read: they are held unknown, nothing is posted or fetched. Once the details read, each is
    settled from them and collected: charged once, posted once."""
    photos = [photo_factory(tmp_path / "inside", f"p{n}.jpg") for n in range(2)]
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, concurrency=2)
    ledger = tmp_path / "photos.ledger.sqlite"
    held = Faults(hold_after_charge_rate=1.0, hold_seconds=60)
    with listening() as listener:
        sandbox = make_sandbox(faults=held, webhooks=Webhooks(urls=(listener.url,)))
        first = spawn_serve([manifest], sandbox, webhooks=False)
        wait_until(lambda: sandbox.stats().holding == 2, what="both answers held")
        bodies = listener.wait_for(2, timeout=30)  # the orders finished: their webhooks
        code, _ = first.stop()
        assert code == 0, first.stderr()
    rows = rows_of(ledger)
    # Cut at the stop as a kill would: the intent on disk, the outcome not settled either way.
    assert all(r.state in (State.SUBMITTING, State.UNKNOWN) and not r.charged for r in rows)
    unreadable = tuple(f"/v1/order/{r.order_id}" for r in rows if r.order_id)
    sandbox.set_faults(Faults(error_rate=1.0, paths=unreadable))

    second = spawn_serve([manifest], sandbox, "--rescan", "2s", webhooks=False)
    for body in bodies:
        assert second.post(webhook_json(body))[0] == 202
    wait_until(
        lambda: second.metric('aihd_webhooks_total{outcome="accepted"}') == 2,
        what="both webhooks taken",
    )
    # The service tried each order's details at its start (and at each rescan): unreadable.
    wait_until(
        lambda: all("could not be read" in (r.error or "") for r in rows_of(ledger)),
        what="the details tried and found unreadable",
    )
    time.sleep(1.0)
    stats = sandbox.stats()
    assert [(r.state, r.charged) for r in rows_of(ledger)] == [(State.UNKNOWN, False)] * 2
    assert stats.order_posts == 2 and stats.downloads == 0

    sandbox.set_faults(Faults())
    wait_until(all_completed(ledger, 2), what="settled from the details and collected")
    code, _ = second.stop()
    assert code == 0, second.stderr()
    stats = sandbox.stats()
    assert stats.charges == {sha256_of(p): 1 for p in photos}
    assert stats.order_posts == 2 and stats.downloads == 2
