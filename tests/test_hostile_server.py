"""A hostile API cannot leak the key, exhaust memory, hold aihd forever, or aim it inward."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.api.v1 import ApiClient, Timeouts
from pipeline.errors import ApiError, AuthRefused, RequestRejected, TransientError
from pipeline.ledger import State
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows, write_manifest
from tests.hostile_helpers import MakeHostile, internal_hits
from tests.hostile_server import INTERNAL_PATH, HostileControl, Hostility

PhotoFactory = Callable[..., Path]
KEY = "hostile-canary-key-7c1e9a2b"
QUICK = Timeouts(connect=2.0, read=1.0)
LIVENESS_SECONDS = 60  # far beyond any deadline here: only a hang reaches it


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, LIVENESS_SECONDS))


async def _charged_order(client: ApiClient, photo: Path) -> str:
    """Upload and submit one photo; its order id."""
    spaces = await client.spaces()
    widgets = await client.widgets(spaces[0].name)
    order_id = await client.upload(photo)
    item = widgets[0].items[0]
    await client.submit(order_id, spaces[0].name, [{"id": widgets[0].id, "item_id": item.id}])
    return order_id


def _assert_no_key(exc: ApiError) -> None:
    for text in (str(exc), repr(exc), exc.error, exc.key, exc.reason):
        assert KEY not in text


# Item 1: the key echoed back ---------------------------------------------------------------


def test_an_error_that_echoes_the_key_holds_only_a_redaction(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The order POST's 422 quotes the key whole and cut: the ApiError holds neither whole."""
    sandbox, _ = make_hostile(Hostility(echo_key=True), api_key=KEY)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY) as client:
            await _charged_order(client, photo)

    with pytest.raises(RequestRejected) as caught:
        run(scenario())
    _assert_no_key(caught.value)
    assert caught.value.key == "api_error_<redacted>"
    assert "<redacted>" in caught.value.error


def test_a_401_that_echoes_a_wrong_key_holds_only_a_redaction(make_hostile: MakeHostile) -> None:
    """Even the key the API refused is never in the error."""
    sandbox, _ = make_hostile(Hostility(echo_key=True))

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY) as client:
            await client.spaces()

    with pytest.raises(AuthRefused) as caught:
        run(scenario())
    _assert_no_key(caught.value)


def test_the_key_in_a_successful_answer_is_redacted(make_hostile: MakeHostile) -> None:
    """Enhancement titles that carry the key reach aihd (and `aihd catalog`) redacted."""
    sandbox, _ = make_hostile(Hostility(key_in_answers=True), api_key=KEY)

    async def scenario() -> list[str]:
        async with ApiClient(sandbox.url, KEY) as client:
            widgets = await client.widgets((await client.spaces())[0].name)
            return [item.title for widget in widgets for item in widget.items]

    titles = run(scenario())
    assert titles and all(t.endswith("<redacted>") and KEY not in t for t in titles)


# Item 3: unbounded answers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "hostility",
    [
        pytest.param(Hostility(huge_answer_bytes=3 * 1024 * 1024), id="huge"),
        # The emulator compresses 256 MB for it: seconds of CPU.
        pytest.param(
            Hostility(gzip_answer_bytes=256 * 1024**2), id="gzip-bomb", marks=pytest.mark.slow
        ),
    ],
)
def test_a_json_answer_over_1_mb_is_refused_unread(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path, hostility: Hostility
) -> None:
    """A poll answered with megabytes of JSON (plain or gzip'd) is a transient error."""
    sandbox, control = make_hostile(api_key=KEY)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY) as client:
            order_id = await _charged_order(client, photo)
            control.set(hostility)
            await client.order(order_id)

    with pytest.raises(TransientError, match="over 1024 KB"):
        run(scenario())


@pytest.mark.parametrize(
    "body",
    ["[" * 200_000 + "]" * 200_000, '{"generated_images": 5}', '{"generated_images": {"a": 1}}'],
    ids=["nested-deep", "images-a-number", "images-a-mapping"],
)
def test_a_poll_answer_of_a_hostile_shape_is_an_api_error_not_a_crash(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path, body: str
) -> None:
    """JSON nested 200,000 deep or of the wrong shape: a transient error, or no images."""
    sandbox, control = make_hostile(api_key=KEY)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> object:
        async with ApiClient(sandbox.url, KEY) as client:
            order_id = await _charged_order(client, photo)
            control.set(Hostility(poll_body=body))
            try:
                return (await client.order(order_id)).generated_images
            except TransientError as exc:
                return exc

    outcome = run(scenario())
    assert outcome == () or isinstance(outcome, TransientError)


def test_a_result_over_the_size_cap_is_refused(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A result longer than the cap is cut off and refused as a result, not read whole."""
    cap = 1024 * 1024
    sandbox, control = make_hostile(api_key=KEY, time_scale=0, eta_seconds=0)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY, max_result_bytes=cap) as client:
            details = await client.order(await _charged_order(client, photo))
            control.set(Hostility(huge_result_bytes=50 * cap))
            await client.download(details.generated_images[0].src, tmp_path / "result")

    with pytest.raises(RequestRejected, match="over 1,048,576 bytes"):
        run(scenario())
    assert (tmp_path / "result").stat().st_size <= cap


# Item 5: trickled answers -------------------------------------------------------------------


def test_a_trickled_poll_is_cut_at_the_whole_answer_deadline(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A byte every 0.2 s, forever, never trips a 1 s per-read timeout; the deadline cuts it."""
    sandbox, control = make_hostile(api_key=KEY)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY, timeouts=QUICK) as client:
            order_id = await _charged_order(client, photo)
            control.set(Hostility(trickle_answer_seconds=0.2))
            await client.order(order_id)

    with pytest.raises(TransientError, match="timed out"):
        run(scenario())


def test_a_trickled_result_is_cut_at_its_deadline(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A result sent a byte at a time falls behind the download's minimum pace and is cut."""
    sandbox, control = make_hostile(api_key=KEY, time_scale=0, eta_seconds=0)
    photo = photo_factory(tmp_path, "room.jpg")

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY, timeouts=QUICK) as client:
            details = await client.order(await _charged_order(client, photo))
            control.set(Hostility(trickle_result_seconds=0.2))
            await client.download(details.generated_images[0].src, tmp_path / "result")

    with pytest.raises(TransientError, match="no whole answer"):
        run(scenario())


# Item 6: result URLs at internal addresses ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:{port}/x", "loopback"),
        ("http://127.0.0.2:{port}/x", "loopback"),
        ("http://[::1]:{port}/x", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/x", "loopback"),
        ("http://0.0.0.0:{port}/x", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://192.168.1.1/x", "private"),
        ("http://224.0.0.1/x", "multicast"),
        ("http://100.64.0.1/x", "non-public"),
    ],
)
def test_result_urls_at_internal_addresses_are_refused_before_connecting(
    make_hostile: MakeHostile, tmp_path: Path, url: str, reason: str
) -> None:
    """The refusal says which address and why; the internal service is never reached."""
    sandbox, _ = make_hostile(api_key=KEY)
    port = sandbox.url.rsplit(":", 1)[1]

    async def scenario() -> None:
        async with ApiClient(sandbox.url, KEY, timeouts=QUICK) as client:
            await client.download(url.format(port=port) + INTERNAL_PATH, tmp_path / "result")

    with pytest.raises(RequestRejected, match=f"{reason} address") as caught:
        run(scenario())
    assert "public addresses or the API's own origin" in str(caught.value)
    assert internal_hits(sandbox) == 0 and not (tmp_path / "result").exists()


# The same, through `aihd collect`: each refused result fails as a result, charged once --------


def _run_then_collect(
    sandbox: Sandbox,
    control: HostileControl,
    hostility: Hostility,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    *extra: str,
) -> tuple[Any, Path]:
    photo_factory(tmp_path / "inside", "room.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, attempts=1)
    done = aihd(["run", str(manifest), *FAST], sandbox, key=KEY)
    assert done.returncode == 0, done.stderr
    control.set(hostility)
    collected = aihd(["collect", str(manifest), "--no-progress", *extra], sandbox, key=KEY)
    return collected, manifest


@pytest.mark.parametrize(
    ("hostility", "reason"),
    [
        (
            Hostility(result_url="http://localhost:{port}" + INTERNAL_PATH),
            "loopback address",
        ),
        (
            Hostility(redirect_results_to="http://localhost:{port}" + INTERNAL_PATH),
            "unexpected redirect, not followed",
        ),
        (Hostility(bomb_result_side=13000), "over the limit of 67,108,864 pixels"),
    ],
    ids=["internal-url", "redirect", "bomb"],
)
def test_collect_fails_a_refused_result_as_a_result_and_spends_nothing_more(
    make_hostile: MakeHostile,
    photo_factory: PhotoFactory,
    tmp_path: Path,
    hostility: Hostility,
    reason: str,
) -> None:
    """Internal URL, redirect, decompression bomb: failed with why, nothing fetched inside."""
    sandbox, control = make_hostile(api_key=KEY, time_scale=0, eta_seconds=0)
    collected, manifest = _run_then_collect(sandbox, control, hostility, photo_factory, tmp_path)
    assert collected.returncode == 1, collected.stderr
    assert "Traceback" not in collected.stderr and reason in collected.stdout
    (row,) = ledger_rows(manifest)
    assert row.state is State.FAILED and reason in (row.error or "")
    assert internal_hits(sandbox) == 0
    assert sandbox.stats().orders_charged == 1
    assert sandbox.stats().downloads <= 1  # a bomb is judged by its header, not fetched twice
    assert not list((tmp_path / "enhanced").rglob("*.*"))


@pytest.mark.slow
def test_collect_under_a_trickled_poll_ends_and_leaves_the_photo_waiting(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """`--request-timeout 1` bounds the whole answer: collect ends, the paid photo waits."""
    sandbox, control = make_hostile(api_key=KEY, time_scale=0, eta_seconds=0)
    collected, manifest = _run_then_collect(
        sandbox,
        control,
        Hostility(trickle_answer_seconds=0.2),
        photo_factory,
        tmp_path,
        "--request-timeout",
        "1",
    )
    assert collected.returncode == 0, collected.stderr
    assert "waiting: 1" in collected.stdout and "timed out" in collected.stderr
    (row,) = ledger_rows(manifest)
    assert row.state is State.SUBMITTED


# Item 7: a wall clock set back ----------------------------------------------------------------


def test_a_clock_set_back_an_hour_does_not_stop_collect_polling(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Orders recorded an hour 'in the future' are polled now; the API says they are done."""
    sandbox = make_sandbox(eta_seconds=0, time_scale=0)
    for n in range(2):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    # As if the clock had been an hour ahead at submission: now it reads an hour earlier.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with sqlite3.connect(manifest.with_name("photos.ledger.sqlite")) as db:
        db.execute("UPDATE photos SET submitted_at = ?", (later,))
    collected = aihd(["collect", str(manifest), "--no-progress"], sandbox)
    assert collected.returncode == 0, collected.stderr
    assert "completed: 2; waiting: 0" in collected.stdout
    assert {r.state for r in ledger_rows(manifest)} == {State.COMPLETED}
