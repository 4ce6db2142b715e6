"""The review desk on ``aihd serve``'s own address (/review/), over plain HTTP to the real
process: its one-time login link (printed on stdout, never logged), the guards it keeps there
(Host, Origin and CSRF, CSP), the photos it lists, and an order again that the running service
pays for once more (a photo rejected on the desk, then ordered again with its cost shown)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Sandbox
from tests.cli_helpers import write_manifest
from tests.desk_helpers import Desk, photo_ids, reviews_by_name
from tests.serve_helpers import (
    SECRET,
    all_completed,
    rows_of,
    sha256_of,
    spawn_serve,
    wait_until,
)

NAMES = ["den.jpg", "hall.jpg", "kitchen.jpg"]


@pytest.mark.slow
def test_serve_serves_the_review_desk_behind_a_login_link_that_works_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    photos = [photo_factory(tmp_path / "inside", name) for name in NAMES]
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    ledger = tmp_path / "photos.ledger.sqlite"
    sandbox = make_sandbox()
    # A photo ordered again on the desk is unchanged on disk: no watcher event brings it back,
    # and the next look at every folder is an hour away. The desk tells the service.
    served = spawn_serve([manifest], sandbox, "--rescan", "1h")
    wait_until(all_completed(ledger, len(NAMES)), what="every photo collected")

    link = served.login_url()
    assert re.fullmatch(re.escape(served.url) + r"/review/login\?token=[\w-]{40,}", link)
    token = link.rsplit("=", 1)[1]
    assert token not in served.stderr()  # on stdout for the one who started it, not logged
    desk = Desk(link, served.process)
    session = desk.log_in()  # the link answers 303 with the session cookie; the page 200
    path = link.split(desk.host, 1)[1]
    again = desk.request("GET", path)
    assert again.status == 403 and "used already" in again.text
    assert "Set-Cookie" not in again.headers

    # The page's photos: every photo of the manifest, collected.
    listed = {p["name"]: p["state"] for p in session.state()["photos"]}  # type: ignore[union-attr, index]
    assert listed == dict.fromkeys(NAMES, "completed")
    page = session.get("/review/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    # The desk's guards on serve's app: another Host, another Origin, no CSRF token, no
    # cookie: refused, nothing decided. The service's own routes are not the desk's.
    ids = photo_ids(manifest)
    decide = {"photo_ids": [ids["den.jpg"]], "decision": "rejected", "reason": "blurred"}
    for host in ("evil.example", f"evil.example:{desk.host.rsplit(':', 1)[1]}"):
        refused = desk.request("GET", "/review/", host=host, headers={"Cookie": session.cookie})
        assert refused.status == 403, host  # DNS rebinding: refused even with a good cookie
    assert session.post("/review/api/decisions", decide, Origin="http://evil.example").status == 403
    assert session.post("/review/api/decisions", decide, X_Aihd_Csrf="").status == 403
    assert desk.request("GET", "/review/api/state").status == 403
    assert reviews_by_name(manifest) == {}
    assert served.get("/healthz")[0] == 200

    # Rejected on the desk, then ordered again: the running service pays for it once more.
    decided = session.post("/review/api/decisions", decide)
    assert decided.status == 200, decided.text
    assert reviews_by_name(manifest) == {"den.jpg": ("rejected", "blurred", "review desk")}
    plan = session.post("/review/api/reorder", {"photo_id": ids["den.jpg"]})
    shown = plan.json()
    assert isinstance(shown, dict) and shown["orders"] == 1
    assert shown["then"] == "the running aihd serve, after its quiet period (1s)"
    done = session.post(
        "/review/api/reorder",
        {"photo_id": ids["den.jpg"], "go": True, "order_id": shown["order_id"]},
    )
    assert done.status == 200, done.text

    def ordered_again() -> bool:
        rows = {Path(r.path).name: r for r in rows_of(ledger)}
        new_order = rows["den.jpg"].order_id not in (None, shown["order_id"])
        return new_order and all(r.state is State.COMPLETED for r in rows.values())

    wait_until(ordered_again, timeout=60, what="the photo ordered again and collected")
    # A browser's live view open at the stop: SIGTERM still ends the service within 10 s.
    host, port = desk.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as events:
        events.sendall(
            f"GET /review/api/events HTTP/1.0\r\nHost: {desk.host}\r\n"
            f"Cookie: {session.cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        heard = b""
        while b"event: progress" not in heard:
            chunk = events.recv(65536)
            assert chunk, heard
            heard += chunk
        code, seconds = served.stop()
    assert code == 0, served.stderr()
    assert seconds < 10
    charges = sandbox.stats().charges
    assert charges == {sha256_of(p): 2 if p.name == "den.jpg" else 1 for p in photos}
    assert sandbox.stats().rate_limited == 0
    assert SECRET not in served.stderr() + "".join(served.out_lines)
