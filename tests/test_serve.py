"""``aihd serve`` as a studio leaves it on: real files written while it watches, real time, the
sandbox's real webhooks, real signals. What a user would see: charges, ledger rows, files."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pipeline.ledger import State
from pipeline.sandbox import Sandbox, Webhooks
from tests.serve_helpers import (
    SECRET,
    all_completed,
    rows_of,
    spawn_serve,
    wait_until,
    webhook_json,
)
from tests.webhook_helpers import listening

LISTINGS_MANIFEST = """\
version: 1
ledger: photos.ledger.sqlite
output: enhanced
rate_limit: {orders: 1000, per_seconds: 600}
retry: {attempts: 5, max_backoff: 0.2}
folders:
  - path: listings/*/inside
    space: indoor
"""


# Each starts `aihd serve` as a process and waits on real time: seconds, not milliseconds.
pytestmark = pytest.mark.slow


def _jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    image = Image.new("RGB", size, (seed * 37 % 255, seed * 91 % 255, 120))
    for x in range(32):
        image.putpixel((x, 0), (255, 255, 255) if (seed >> x) & 1 else (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def _manifest(root: Path, text: str = LISTINGS_MANIFEST) -> Path:
    path = root / "photos.yaml"
    path.write_text(text)
    return path


def test_a_photo_written_slowly_is_not_uploaded_half_written(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """Written in place in chunks over 3 s (and a second one as .part, renamed at the end),
    each photo is uploaded once, whole: the ledger's and the sandbox's hash is the full file's,
    and nothing of a half-written one was ever charged."""
    (tmp_path / "listings/1-elm/inside").mkdir(parents=True)
    manifest = _manifest(tmp_path)
    sandbox = make_sandbox()
    served = spawn_serve([manifest], sandbox)
    folder = tmp_path / "listings/1-elm/inside"
    slow, renamed = _jpeg(1, (800, 600)), _jpeg(2, (800, 600))
    part = folder / "garden.jpg.part"
    with (folder / "kitchen.jpg").open("wb") as one, part.open("wb") as two:
        for n in range(7):  # 7 chunks, 0.5 s apart: 3 s in all, longer than the quiet period
            one.write(slow[n * len(slow) // 7 : (n + 1) * len(slow) // 7])
            two.write(renamed[n * len(renamed) // 7 : (n + 1) * len(renamed) // 7])
            one.flush()
            two.flush()
            time.sleep(0.5)
    part.rename(folder / "garden.jpg")
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(all_completed(ledger, 2), what="both photos completed")
    code, seconds = served.stop()
    assert code == 0, served.stderr()
    full = {hashlib.sha256(slow).hexdigest(), hashlib.sha256(renamed).hexdigest()}
    assert {r.sha256 for r in rows_of(ledger)} == full
    stats = sandbox.stats()
    assert stats.charges == dict.fromkeys(full, 1)  # no partial content was ever charged
    assert stats.uploads == 2
    assert seconds < 10


def test_a_listing_landing_during_the_day_is_ordered_once_and_collected_by_webhook_only(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """A new listing folder appears under the glob while serve runs: its photos are ordered
    once and collected by the webhook, with no polling (one read of each order: the re-read
    the webhook asked for), into the manifest's output."""
    (tmp_path / "listings").mkdir()
    manifest = _manifest(tmp_path)
    sandbox = make_sandbox()
    served = spawn_serve([manifest], sandbox)
    time.sleep(1.0)
    landing = tmp_path / "incoming"  # copied in whole, as an uploader's folder move does
    (landing / "inside").mkdir(parents=True)
    originals = {f"room{n}.jpg": _jpeg(10 + n) for n in range(3)}
    for name, data in originals.items():
        (landing / "inside" / name).write_bytes(data)
    landing.rename(tmp_path / "listings" / "7-birch")
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(all_completed(ledger, 3), what="the new listing collected")
    assert served.metric('aihd_result_reads_total{cause="webhook"}') == 3
    assert served.metric('aihd_result_reads_total{cause="poll"}') == 0
    code, _ = served.stop()
    assert code == 0, served.stderr()
    stats = sandbox.stats()
    assert sorted(stats.charges.values()) == [1, 1, 1]
    assert stats.requests["GET /v1/order/{order_id}"] == 3  # one re-read each: no polling
    for name in originals:
        result = tmp_path / "enhanced/listings/7-birch/inside" / name
        assert result.is_file()
    for row in rows_of(ledger):
        assert row.state is State.COMPLETED and row.folder == "listings/7-birch/inside"


def test_a_forged_webhook_naming_a_real_order_with_a_foreign_url_makes_no_request_to_it(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The payload's URLs are never fetched: the order is read again with the account's key
    and the result downloaded from that answer. Ids the ledger did not create are ignored and
    counted; a wrong secret, a big body, bad JSON are refused at once with nothing done."""
    folder = tmp_path / "listings/3-ash/inside"
    folder.mkdir(parents=True)
    (folder / "hall.jpg").write_bytes(_jpeg(30))
    manifest = _manifest(tmp_path)
    sandbox = make_sandbox(eta_seconds=3600)  # no real webhook: the forged one comes first
    served = spawn_serve([manifest], sandbox)
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(lambda: [r.state for r in rows_of(ledger)] == [State.SUBMITTED], what="ordered")
    (row,) = rows_of(ledger)
    with listening() as foreign:
        forged = {
            "order_id": row.order_id,
            "image": {"id": "x", "before_src": foreign.url + "/b", "after_src": foreign.url + "/a"},
            "service_name": "service-image-enhancement",
            "user_id": "someone",
        }
        status, seconds = served.post(webhook_json(forged))
        assert status == 202 and seconds < 1.0
        stranger = {**forged, "order_id": "an-order-of-the-web-app"}
        assert served.post(webhook_json(stranger))[0] == 202
        upscale = {"generated_image_id": "g", "upscaled_image_src": foreign.url + "/u"}
        assert served.post(webhook_json(upscale))[0] == 202
        assert served.post(webhook_json(forged), secret="wrong-" + SECRET)[0] == 404
        assert served.post(b"{" + b" " * (65 * 1024) + b"}")[0] == 413
        assert served.post(b"not json")[0] == 400
        assert served.post(webhook_json({"hello": "world"}))[0] == 400
        wait_until(lambda: served.metric('aihd_webhooks_total{outcome="ignored"}') == 2)
        time.sleep(1.0)  # time for anything the forged payload could have started
        assert foreign.heard == []
    assert served.metric('aihd_webhooks_total{outcome="accepted"}') == 1
    assert served.metric('aihd_webhooks_total{outcome="refused"}') == 4
    code, _ = served.stop()
    assert code == 0
    (row,) = rows_of(ledger)
    assert row.state is State.SUBMITTED  # the API said "processing": nothing was downloaded
    assert sandbox.stats().downloads == 0
    assert SECRET not in served.stderr()


def test_health_and_metrics_say_how_the_service_stands_without_its_secrets(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    (tmp_path / "listings").mkdir()
    manifest = _manifest(tmp_path)
    sandbox = make_sandbox()
    served = spawn_serve([manifest], sandbox)
    wait_until(lambda: json.loads(served.get("/healthz")[1])["catalog"] == "read")
    status, body = served.get("/healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] and health["ledger"] == "reachable"
    status, text = served.get("/metrics")
    assert status == 200
    for name in (
        'aihd_photos{state="completed"}',
        "aihd_orders_spent_total",
        "aihd_window_slots_used",
        "aihd_rate_limited_total",
        "aihd_retries_total",
        'aihd_webhooks_total{outcome="ignored"}',
        "aihd_collect_backlog",
    ):
        assert name in text
    code, _ = served.stop()
    assert code == 0
    assert SECRET not in text + body + served.stderr()
    assert sandbox.api_key not in text + body + served.stderr()


def test_the_webhook_url_to_paste_is_printed_on_request_and_the_secret_kept_owner_only(
    tmp_path: Path,
) -> None:
    from tests.cli_helpers import aihd

    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    args = ["serve", "--print-webhook-url", "--public-url", "https://studio.example"]
    first = aihd(args, None, env=env)
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    assert url.startswith("https://studio.example/hooks/") and len(url) > 50
    assert aihd(args, None, env=env).stdout.strip() == url  # made once, kept
    kept = tmp_path / "state/aihd/webhook-secret"
    assert kept.stat().st_mode & 0o777 == 0o600
    plain = aihd([*args[:2], "--public-url", "http://studio.example"], None, env=env)
    assert plain.returncode == 2 and "HTTPS" in plain.stderr
    short = aihd(args, None, env={**env, "AIHD_WEBHOOK_SECRET": "short"})
    assert short.returncode == 2 and "short" not in short.stderr.replace("--", "")


def test_sighup_reads_the_manifests_again_and_a_bad_one_is_kept_as_it_was(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """A manifest broken while serving is refused at SIGHUP, with the reason in the log, and
    the service goes on with the manifest it had; a good change takes effect."""
    import signal

    (tmp_path / "listings/1-elm/inside").mkdir(parents=True)
    (tmp_path / "extra").mkdir()
    manifest = _manifest(tmp_path)
    good = manifest.read_text()
    sandbox = make_sandbox()
    served = spawn_serve([manifest], sandbox)
    manifest.write_text(good.replace("version: 1", "version: 1\nconcurency: 4"))
    served.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "concurency" in served.stderr(), what="the reason logged")
    assert "serving it as it was before" in served.stderr()
    (tmp_path / "listings/1-elm/inside/a.jpg").write_bytes(_jpeg(40))
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(all_completed(ledger, 1), what="a photo of the old manifest ordered")
    manifest.write_text(good + "  - path: extra\n    space: outdoor\n")
    served.process.send_signal(signal.SIGHUP)
    wait_until(lambda: served.metric("aihd_folders_watched") == 2, what="the new folder")
    (tmp_path / "extra/b.jpg").write_bytes(_jpeg(41))
    wait_until(all_completed(ledger, 2), what="a photo of the new folder ordered")
    code, _ = served.stop()
    assert code == 0, served.stderr()
    assert sorted(r.folder for r in rows_of(ledger)) == ["extra", "listings/1-elm/inside"]
    assert sorted(sandbox.stats().charges.values()) == [1, 1]


def test_serve_refuses_what_it_cannot_serve_in_one_line(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    from tests.cli_helpers import aihd, write_manifest

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = write_manifest(tmp_path, {"a": ("indoor", [])}, name="one.yaml")
    other = write_manifest(tmp_path, {"b": ("indoor", [])}, name="two.yaml", account="other")
    sandbox = make_sandbox()
    cases = {
        ("serve",): "name at least one manifest",
        ("serve", str(one), "--listen", "nowhere"): "expected HOST:PORT",
        ("serve", str(one), str(other)): "differ in account",
        ("serve", str(one), "--quiet-period", "5"): "give a unit",
        ("serve", "--print-webhook-url"): "needs --public-url",
    }
    for args, message in cases.items():
        refused = aihd(list(args), sandbox)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in refused.stderr and "Traceback" not in refused.stderr
    served = spawn_serve([one], sandbox)
    port = served.url.rsplit(":", 1)[1]
    taken = aihd(["serve", str(one), "--listen", f"127.0.0.1:{port}"], sandbox)
    assert taken.returncode == 2 and "another program listens there" in taken.stderr
    assert "Traceback" not in taken.stderr
    assert served.stop()[0] == 0


def test_the_api_away_for_a_while_does_not_end_the_service(
    photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """The API stops answering (no connection) while photos arrive: they fail as retryable,
    the service stays up, and once the API is back the next rescan orders them, once."""
    import secrets
    import socket

    from pipeline.sandbox import SandboxConfig, SandboxThread
    from tests.cli_helpers import write_manifest
    from tests.conftest import FAST_SANDBOX

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = SandboxConfig(api_key=secrets.token_urlsafe(24), **FAST_SANDBOX)
    (tmp_path / "inside").mkdir()
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, attempts=2, max_backoff=0.1)
    with SandboxThread(config, port=port) as first:
        served = spawn_serve([manifest], first, "--rescan", "3s")
        wait_until(lambda: json.loads(served.get("/healthz")[1])["catalog"] == "read")
    photos = [photo_factory(tmp_path / "inside", f"p{n}.jpg") for n in range(2)]
    ledger = tmp_path / "photos.ledger.sqlite"
    wait_until(
        lambda: [r.state for r in rows_of(ledger)] == [State.FAILED] * 2,
        what="both failed while the API is away",
    )
    assert served.process.poll() is None
    assert all(r.retryable and "cannot connect" in (r.error or "") for r in rows_of(ledger))
    with SandboxThread(config, port=port) as back:
        back.set_webhooks(Webhooks(urls=(served.hooks,)))
        wait_until(all_completed(ledger, 2), what="ordered once the API is back")
        code, _ = served.stop()
        assert code == 0, served.stderr()
        assert sorted(back.stats().charges.values()) == [1, 1]
    assert len(photos) == 2
