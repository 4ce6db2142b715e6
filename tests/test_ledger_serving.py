"""What `aihd serve` adds to the ledger, on both stores: a photo found by the order id a webhook
names, a claim let go one photo at a time, and upscales: one intent per generated image, ever,
a refusal retried, a lost answer never taken again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bootclock import new_owner
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, State, open_ledger
from pipeline.ledger.serving import MAX_UPSCALE_ATTEMPTS

OPTIONS = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "sqlite":
        return tmp_path / "account.ledger.sqlite"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def ledger(location: Path | str) -> Iterator[Ledger]:
    opened = open_ledger(location)
    try:
        yield opened
    finally:
        opened.close()


def _completed(ledger: Ledger, path: str, sha: str, order_id: str) -> int:
    (row,) = ledger.record_found([FoundPhoto(path, "/m/in", 1, 1, sha, OPTIONS)])
    ledger.mark_uploaded(row.id, order_id)
    ledger.mark_submitting(row.id)
    ledger.mark_submitted(row.id, "img", 30, answered=True)
    ledger.mark_completed(row.id, ["u"], [f"/out/{Path(path).name}"])
    return row.id


def test_a_photo_is_found_by_the_order_id_a_webhook_names(ledger: Ledger) -> None:
    photo = _completed(ledger, "/m/in/a.jpg", "a" * 64, "order-a")
    found = ledger.photo_by_order("order-a")
    assert found is not None and found.id == photo
    assert ledger.photo_by_order("someone-elses-order") is None


def test_a_claim_is_let_go_one_photo_at_a_time_and_only_ones_own(
    ledger: Ledger, location: Path | str
) -> None:
    rows = ledger.record_found(
        [FoundPhoto(f"/m/in/{n}.jpg", "/m/in", 1, 1, str(n) * 64, OPTIONS) for n in range(2)]
    )
    ledger.owner = new_owner()
    assert ledger.claim(rows[0].id) and ledger.claim(rows[1].id)
    ledger.release_claim(rows[0].id)
    other = open_ledger(location)
    try:
        other.owner = new_owner()
        assert other.claim(rows[0].id)  # let go: another run may take it
        assert not other.claim(rows[1].id)  # still held by a live run
        ledger.release_claim(rows[0].id)  # not ours any more: nothing changes
        assert not ledger.claim(rows[0].id)
    finally:
        other.close()


def test_an_upscale_is_wished_once_and_intended_once_per_generated_image(ledger: Ledger) -> None:
    photo = _completed(ledger, "/m/in/a.jpg", "a" * 64, "order-a")
    assert ledger.wish_upscales([photo], "test") == 1
    assert ledger.wish_upscales([photo], "test") == 0
    assert ledger.upscale_work() == [photo]
    assert [u.state for u in ledger.upscales()] == ["wanted"]
    assert ledger.upscale_intents(photo, ["g1", "g2"]) == ["g1", "g2"]
    assert ledger.upscale_intents(photo, ["g1", "g2"]) == []  # never a second POST
    assert ledger.upscale_work() == []
    ledger.upscale_answered("g1", None)
    ledger.upscale_answered("g2", "429 rate-limited")  # refused: nothing was charged
    assert ledger.upscale_work() == [photo]
    assert ledger.upscale_intents(photo, ["g1", "g2"]) == ["g2"]
    states = {u.generated_image_id: (u.state, u.attempts) for u in ledger.upscales()}
    assert states == {"g1": ("requested", 1), "g2": ("requesting", 2)}
    assert ledger.finish_upscale("g1", "/out/a-upscaled.jpg")
    assert not ledger.finish_upscale("g1", "/out/other.jpg")  # a duplicate webhook
    one = ledger.upscale("g1")
    assert one is not None and (one.state, one.output_path) == ("completed", "/out/a-upscaled.jpg")
    assert ledger.upscale("unknown") is None
    assert [u.photo_id for u in ledger.upscales(["/elsewhere"])] == []


def test_a_lost_answer_stays_requesting_and_refusals_end_after_a_few(ledger: Ledger) -> None:
    photo = _completed(ledger, "/m/in/a.jpg", "a" * 64, "order-a")
    ledger.wish_upscales([photo], "test")
    ledger.upscale_intents(photo, ["lost"])
    assert ledger.upscale_work() == []  # its POST may have been sent: never again by itself
    other = _completed(ledger, "/m/in/b.jpg", "b" * 64, "order-b")
    ledger.wish_upscales([other], "test")
    for _ in range(MAX_UPSCALE_ATTEMPTS):
        assert ledger.upscale_intents(other, ["refused"]) == ["refused"]
        ledger.upscale_answered("refused", "400 bad request")
    assert ledger.upscale_intents(other, ["refused"]) == []
    row = ledger.upscale("refused")
    assert row is not None and (row.state, row.retryable) == ("failed", False)


def test_a_wish_on_a_photo_not_completed_waits_for_its_result(ledger: Ledger) -> None:
    (row,) = ledger.record_found([FoundPhoto("/m/in/c.jpg", "/m/in", 1, 1, "c" * 64, OPTIONS)])
    ledger.wish_upscales([row.id], "manifest")
    assert ledger.upscale_work() == []
    assert ledger.get(row.id).state is State.PENDING


def test_a_scope_of_thousands_of_folders_is_one_parameter_not_a_deep_expression(
    ledger: Ledger,
) -> None:
    """A glob of 1,500 listings (aihd serve, aihd run): SQLite refused an OR over 1,000
    deep ("Expression tree is too large") at the run's end."""
    _completed(ledger, "/m/in/a.jpg", "a" * 64, "order-a")
    folders = [f"/m/listing-{n}" for n in range(1500)] + ["/m/in"]
    assert ledger.counts(folders)[State.COMPLETED] == 1
    assert [r.path for r in ledger.photos(scope=folders)] == ["/m/in/a.jpg"]
    assert ledger.charged_counts(folders) == (1, 0)
    assert list(ledger.counts_by_folder(folders)) == ["/m/in"]
    assert ledger.counts(["/m/i"])[State.COMPLETED] == 0  # a folder, not a string prefix
    ledger.wish_upscales([ledger.photos()[0].id], "test")
    assert len(ledger.upscales(folders)) == 1 and ledger.upscale_work(folders) != []
