"""The review desk over plain HTTP (``aihd review MANIFEST --serve``, a real process): who gets
in, what it refuses, and what each call writes in the ledger. The browser's side is in
test_review_desk_browser.py."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pipeline.ledger import Decision, State, open_ledger
from tests.cli_helpers import aihd
from tests.desk_helpers import (
    Browserless,
    Desk,
    listing_photos,
    photo_ids,
    reviews_by_name,
    served_desk,
)

INSIDE = "listings/12-oak-st/inside"
OUTSIDE = "listings/12-oak-st/outside"
KEY = "sk-desk-test-key-0123456789abcdef"  # AIHD_API_KEY in the desk's environment


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Two folders of one listing: 3 collected photos inside, 2 outside and 1 not collected."""
    return listing_photos(
        tmp_path,
        {INSIDE: ["kitchen.jpg", "den.jpg", "bath.jpg"], OUTSIDE: ["front.jpg", "yard.jpg"]},
        waiting=["yard.jpg"],
    )


@pytest.fixture
def desk(manifest: Path) -> Iterator[Desk]:
    with served_desk(manifest, env={"AIHD_API_KEY": KEY}) as running:
        yield running


def _decide(session: Browserless, names: list[str], manifest: Path, **body: object) -> object:
    ids = photo_ids(manifest)
    answer = session.post("/review/api/decisions", {"photo_ids": [ids[n] for n in names], **body})
    assert answer.status == 200, answer.text
    return answer.json()


def test_a_login_link_lets_one_browser_in_once(desk: Desk, manifest: Path) -> None:
    """The printed link answers with an HttpOnly, SameSite=Strict cookie and a redirect to the
    desk without the token; used again, or wrong, it is refused; no cookie, no desk."""
    link = desk.login_url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/review/login\?token=[\w-]{40,}", link)
    path = link.split(desk.host, 1)[1]
    first = desk.request("GET", path)
    assert first.status == 303 and first.headers["Location"] == "/review/"
    cookie = first.headers["Set-Cookie"]
    assert {"HttpOnly", "SameSite=Strict", "Path=/review/"} <= {
        part.strip() for part in cookie.split(";")
    }
    again = desk.request("GET", path)
    assert again.status == 403 and "used already" in again.text
    assert "Set-Cookie" not in again.headers
    wrong = desk.request("GET", path[:-4] + "AAAA")
    assert wrong.status == 403 and "Set-Cookie" not in wrong.headers
    assert desk.request("GET", "/review/login").status == 403
    session_cookie = cookie.split(";", 1)[0]
    assert desk.request("GET", "/review/", headers={"Cookie": session_cookie}).status == 200
    for where in ("/review/", "/review/api/state", "/review/api/events"):
        assert desk.request("GET", where).status == 403
        assert desk.request("GET", where, headers={"Cookie": "aihd_desk=guessed"}).status == 403
    assert desk.request("GET", "/review").headers["Location"] == "/review/"


def test_every_answer_carries_the_policy_and_none_a_cors_header(desk: Desk, manifest: Path) -> None:
    """CSP with no inline script on pages, refusals and images alike; no Access-Control-*
    header, even to a cross-origin preflight."""
    session = desk.log_in()
    ids = photo_ids(manifest)
    evil = {"Origin": "http://evil.example"}
    answers = [
        session.get("/review/"),
        session.get("/review/api/state"),
        session.get(f"/review/photos/{ids['kitchen.jpg']}/after/thumb"),
        session.get("/review/assets/review.js"),
        desk.request("GET", "/review/"),
        desk.request("GET", "/review/", host="evil.example"),
        desk.request(
            "OPTIONS",
            "/review/api/decisions",
            headers={
                **evil,
                "Access-Control-Request-Method": "POST",
            },
        ),
        desk.request("POST", "/review/api/decisions", headers=evil, body={}),
    ]
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy, answer.status
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    page = answers[0].text
    assert re.search(r"<[^>]+\son\w+=", page) is None  # no inline event handler
    assert re.findall(r"<script[^>]*>", page) == ['<script src="assets/review.js">']


def test_a_request_naming_another_host_is_refused(desk: Desk, manifest: Path) -> None:
    """DNS rebinding: Host evil.example (or another port) is refused before anything else,
    even with a good cookie and token: nothing decided, the login link not spent."""
    path = desk.login_url.split(desk.host, 1)[1]
    port = desk.host.rsplit(":", 1)[1]
    for host in (
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1:{int(port) + 1}",
        f"localhost.evil.example:{port}",
        "",
    ):
        assert desk.request("GET", path, host=host).status == 403, host
    session = desk.log_in()  # the link still works: the refusals spent nothing
    kitchen = photo_ids(manifest)["kitchen.jpg"]
    for host in ("evil.example", f"evil.example:{port}"):
        answer = desk.request(
            "POST",
            "/review/api/decisions",
            host=host,
            headers={
                "Cookie": session.cookie,
                "Origin": f"http://{host}",
                "X-Aihd-Csrf": session.csrf,
                "Content-Type": "application/json",
            },
            body={"photo_ids": [kitchen], "decision": "approved"},
        )
        assert answer.status == 403, host
        assert (
            desk.request(
                "GET", "/review/api/state", host=host, headers={"Cookie": session.cookie}
            ).status
            == 403
        )
    assert reviews_by_name(manifest) == {}
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"LOCALHOST.:{port}"):
        answer = desk.request("GET", "/review/", host=host, headers={"Cookie": session.cookie})
        assert answer.status == 200, host


def test_a_post_from_another_origin_or_without_the_csrf_token_changes_nothing(
    desk: Desk, manifest: Path
) -> None:
    """403 for a POST with another Origin, no Origin, no or a wrong CSRF token; 415 for a
    form's content type; the ledger holds no decision after any of them."""
    session = desk.log_in()
    other = desk.log_in(_another_link(session))
    kitchen = photo_ids(manifest)["kitchen.jpg"]
    body = {"photo_ids": [kitchen], "decision": "rejected"}
    refused = [
        session.post("/review/api/decisions", body, Origin="http://evil.example"),
        session.post("/review/api/decisions", body, Origin="null"),
        session.post("/review/api/decisions", body, Origin=""),
        session.post(
            "/review/api/decisions", body, Origin=desk.origin.replace("127.0.0.1", "localhost")
        ),
        session.post("/review/api/decisions", body, X_Aihd_Csrf=""),
        session.post("/review/api/decisions", body, X_Aihd_Csrf="x" * 32),
        session.post("/review/api/decisions", body, X_Aihd_Csrf=other.csrf),  # another session's
        session.post(
            "/review/api/reorder", {"photo_id": kitchen, "go": True}, Origin="http://evil.example"
        ),
        session.post("/review/api/login-links", {}, X_Aihd_Csrf=""),
    ]
    assert [a.status for a in refused] == [403] * len(refused), [a.text for a in refused]
    assert all("refused" in str(a.json()) for a in refused)
    form = session.post("/review/api/decisions", body, Content_Type="text/plain")
    assert form.status == 415
    assert reviews_by_name(manifest) == {}
    assert _state_of(manifest, "kitchen.jpg") is State.COMPLETED  # not ordered again either
    assert session.post("/review/api/decisions", body).status == 200
    assert reviews_by_name(manifest) == {"kitchen.jpg": ("rejected", None, "review desk")}


def _another_link(session: Browserless) -> str:
    answer = session.post("/review/api/login-links", {})
    assert answer.status == 200, answer.text
    url = answer.json()["url"]  # type: ignore[index]
    assert isinstance(url, str) and url.startswith(session.desk.origin + "/review/login?token=")
    return url


def _state_of(manifest: Path, name: str) -> State:
    ledger = open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        (row,) = [r for r in ledger.photos() if Path(r.path).name == name]
        return row.state
    finally:
        ledger.close()


def test_decisions_are_in_the_ledger_at_once_with_their_reason(
    desk: Desk, manifest: Path, tmp_path: Path
) -> None:
    """Approve, reject with a reason (kept as one clean line), undecide; a photo not collected
    is not decided; `aihd export` shows each decision; bad input: one line, nothing written."""
    session = desk.log_in()
    assert _decide(session, ["kitchen.jpg", "den.jpg"], manifest, decision="approved") == {
        "recorded": 2,
        "decision": "approved",
        "reason": None,
    }
    _decide(
        session, ["bath.jpg"], manifest, decision="rejected", reason="  Colours\nare\toff \x07 "
    )
    assert _decide(session, ["yard.jpg"], manifest, decision="approved")["recorded"] == 0  # type: ignore[index]
    _decide(session, ["den.jpg"], manifest, decision=None)  # undecided again
    assert reviews_by_name(manifest) == {
        "kitchen.jpg": ("approved", None, "review desk"),
        "bath.jpg": ("rejected", "Colours are off", "review desk"),
    }
    done = aihd(["export", str(manifest), "--format", "csv"], None)
    assert done.returncode == 0, done.stderr
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert (rows["bath.jpg"]["decision"], rows["bath.jpg"]["decision_reason"]) == (
        "rejected",
        "Colours are off",
    )
    assert rows["kitchen.jpg"]["decision"] == "approved" and rows["den.jpg"]["decision"] == ""
    shown = {p["name"]: (p["decision"], p["reason"]) for p in session.state()["photos"]}  # type: ignore[union-attr, index]
    assert shown["bath.jpg"] == ("rejected", "Colours are off") and shown["den.jpg"] == (None, None)

    bad = [
        session.post(
            "/review/api/decisions",
            b"{not json",
        ),
        session.post("/review/api/decisions", {"photo_ids": [], "decision": "approved"}),
        session.post("/review/api/decisions", {"photo_ids": ["1"], "decision": "approved"}),
        session.post("/review/api/decisions", {"photo_ids": [1], "decision": "maybe"}),
        session.post("/review/api/decisions", {"photo_ids": [999_999], "decision": "approved"}),
    ]
    assert [a.status for a in bad] == [400] * len(bad)
    assert "not a photo of this desk" in str(bad[-1].json())
    assert all("\n" not in str(a.json()) and "Traceback" not in a.text for a in bad)
    assert len(reviews_by_name(manifest)) == 2


def test_images_are_only_the_files_the_ledger_names(
    desk: Desk, manifest: Path, tmp_path: Path
) -> None:
    """A photo's original or result, as a thumbnail or a screen-sized view, by its ledger
    number; anything else is 404 (another manifest's photo in the same ledger too)."""
    session = desk.log_in()
    ids = photo_ids(manifest)
    thumb = session.get(f"/review/photos/{ids['kitchen.jpg']}/after/thumb")
    large = session.get(f"/review/photos/{ids['kitchen.jpg']}/before/large")
    for answer in (thumb, large):
        assert answer.status == 200 and answer.headers["Content-Type"] == "image/jpeg"
        with Image.open(io.BytesIO(answer.body)) as image:
            assert image.format == "JPEG" and image.size == (160, 120)
    assert (tmp_path / "review" / "thumbs").is_dir() and (tmp_path / "review" / "large").is_dir()
    assert session.get(f"/review/photos/{ids['yard.jpg']}/after/thumb").status == 404  # none yet
    # Another manifest's photo in the same ledger: a number the desk's manifests do not hold.
    listing_photos(tmp_path, {"elsewhere": ["x.jpg"]}, manifest="other.yaml", ledger="desk")
    stranger = photo_ids(manifest)["x.jpg"]
    assert session.get(f"/review/photos/{stranger}/before/thumb").status == 404
    assert (
        session.post(
            "/review/api/decisions", {"photo_ids": [stranger], "decision": "approved"}
        ).status
        == 400
    )
    for path in (
        "/review/photos/999999/before/thumb",
        f"/review/photos/{ids['kitchen.jpg']}/before/huge",
        f"/review/photos/{ids['kitchen.jpg']}/../../../../etc/passwd",
        f"/review/photos/{ids['kitchen.jpg']}/%2e%2e/thumb",
        "/review/assets/../page.py",
        "/review/assets/review.js.map",
    ):
        assert session.get(path).status == 404, path


def test_order_again_shows_the_cost_then_needs_go_with_what_was_shown(
    desk: Desk, manifest: Path
) -> None:
    """The plan costs 1 order and names the command; nothing changes until go with the order
    id shown; then the photo waits for the next run, its decision gone (a new result)."""
    session = desk.log_in()
    _decide(session, ["den.jpg"], manifest, decision="rejected", reason="artefacts")
    den = photo_ids(manifest)["den.jpg"]
    plan = session.post("/review/api/reorder", {"photo_id": den})
    assert plan.status == 200
    shown = plan.json()
    assert isinstance(shown, dict)
    den_path = str(manifest.parent / INSIDE / "den.jpg")
    assert shown["orders"] == 1 and shown["order_id"].startswith("order-")
    assert shown["command"] == f"aihd reorder {manifest} {den_path} --yes"
    assert shown["then"] == f"the next aihd run {manifest}"
    assert _state_of(manifest, "den.jpg") is State.COMPLETED
    stale = session.post("/review/api/reorder", {"photo_id": den, "go": True, "order_id": "x"})
    assert stale.status == 409 and _state_of(manifest, "den.jpg") is State.COMPLETED
    done = session.post(
        "/review/api/reorder", {"photo_id": den, "go": True, "order_id": shown["order_id"]}
    )
    assert done.status == 200 and done.json()["reordered"] == 1  # type: ignore[index]
    assert _state_of(manifest, "den.jpg") is State.PENDING
    assert "den.jpg" not in reviews_by_name(manifest)
    again = session.post("/review/api/reorder", {"photo_id": den, "go": True, "order_id": ""})
    assert again.status == 409 and "not ordered yet" in str(again.json())


def test_a_listing_is_delivered_once_every_collected_photo_is_decided(
    desk: Desk, manifest: Path, tmp_path: Path
) -> None:
    """409 while a photo is undecided; then `aihd deliver`'s code writes the listing's
    approved photos and disclosure into delivery/<listing>/, rejected ones left out."""
    session = desk.log_in()
    listing = "0:12-oak-st"
    _decide(session, ["kitchen.jpg", "front.jpg", "bath.jpg"], manifest, decision="approved")
    early = session.post("/review/api/deliver", {"listing": listing})
    assert early.status == 409 and "1 photos are not decided yet" in str(early.json())
    assert not (tmp_path / "delivery").exists()
    _decide(session, ["den.jpg"], manifest, decision="rejected")
    done = session.post("/review/api/deliver", {"listing": listing})
    assert done.status == 200, done.text
    delivered = tmp_path / "delivery" / "12-oak-st"
    assert done.json()["delivered"] == [{"into": str(delivered), "photos": 3}]  # type: ignore[index]
    files = sorted(p.name for p in delivered.iterdir())
    assert "disclosure.csv" in files and len(files) == 4
    assert not [f for f in files if "den" in f]
    assert session.post("/review/api/deliver", {"listing": "0:nope"}).status == 400


def _events(desk: Desk, session: Browserless) -> socket.socket:
    sock = socket.create_connection((desk.host.rsplit(":", 1)[0], int(desk.host.rsplit(":", 1)[1])))
    sock.sendall(
        f"GET /review/api/events HTTP/1.0\r\nHost: {desk.host}\r\nCookie: {session.cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    sock.settimeout(1.0)
    return sock


def _next_event(sock: socket.socket, name: str, seen: bytearray, within: float) -> object:
    deadline = time.monotonic() + within
    pattern = re.compile(rb"event: " + name.encode() + rb"\ndata: (.*?)\n\n", re.S)
    while time.monotonic() < deadline:
        found = pattern.search(seen)
        if found is not None:
            data = bytes(found.group(1))  # before the buffer changes under the match
            del seen[: found.end()]
            return json.loads(data)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        assert chunk, "the event stream ended"
        seen += chunk
    raise AssertionError(f"no {name} event within {within} s: {bytes(seen)[-500:]!r}")


def test_progress_and_changes_arrive_by_themselves(desk: Desk, manifest: Path) -> None:
    """Server-sent events: the day's progress at once; then a result collected and a
    decision made by another process arrive without asking."""
    session = desk.log_in()
    sock = _events(desk, session)
    seen = bytearray()
    try:
        progress = _next_event(sock, "progress", seen, 10)
        assert progress == {
            "ordered_today": 5,
            "waiting": 1,
            "collected": 4,
            "failed": 0,
            "to_order": 0,
        }
        ledger = open_ledger(manifest.with_name("desk.ledger.sqlite"))
        try:
            yard = photo_ids(manifest)["yard.jpg"]
            result = manifest.parent / "enhanced" / OUTSIDE / "yard.jpg"
            ledger.mark_completed(yard, ["http://results/yard"], [str(result)])
            ledger.record_reviews(
                [photo_ids(manifest)["front.jpg"]], Decision.APPROVED, "aihd approve"
            )
        finally:
            ledger.close()
        changed = _next_event(sock, "photos", seen, 15)
        assert isinstance(changed, dict)
        by_name = {p["name"]: p for p in changed["changed"]}
        assert by_name["yard.jpg"]["state"] == "completed" and by_name["yard.jpg"]["after"]
        assert by_name["front.jpg"]["decision"] == "approved"
        assert _next_event(sock, "progress", seen, 5) == {
            "ordered_today": 5,
            "waiting": 0,
            "collected": 5,
            "failed": 0,
            "to_order": 0,
        }
    finally:
        sock.close()


def test_the_desk_never_shows_the_api_key(desk: Desk, manifest: Path) -> None:
    """Not in the page, its state, its script, an error, a refusal, nor what it printed."""
    session = desk.log_in()
    seen = [
        session.get("/review/").text,
        session.get("/review/api/state").text,
        session.get("/review/assets/review.js").text,
        session.post("/review/api/decisions", {"photo_ids": [1], "decision": "x"}).text,
        desk.request("GET", "/review/").text,
        desk.request("GET", "/review/", host="evil.example").text,
        desk.login_url,
    ]
    assert all(KEY not in text for text in seen)


def test_the_desk_stops_cleanly_and_says_nothing_of_its_key(manifest: Path) -> None:
    """SIGTERM: exit 0, a line saying it stopped; the key in none of its output."""
    with served_desk(manifest, env={"AIHD_API_KEY": KEY}) as desk:
        desk.log_in()
    text = "\n".join(desk.stderr_lines)
    assert "the desk stopped" in text and KEY not in text + desk.login_url


def test_listen_and_its_companions_are_checked(manifest: Path) -> None:
    """A bad --listen, --listen without --serve, --serve with --apply: one line, exit 2."""
    for args, says in (
        (["--serve", "--listen", "nowhere"], "expected HOST:PORT"),
        (["--listen", "127.0.0.1:9"], "--listen goes with --serve"),
        (["--serve", "--apply", "x.json"], "--serve takes neither"),
        (["--serve", "--listen", "127.0.0.1:99999"], "expected HOST:PORT"),
    ):
        done = aihd(["review", str(manifest), *args], None)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_address_is_allowed_only_behind_the_login(manifest: Path) -> None:
    """--listen 0.0.0.0: a warning, the link on 127.0.0.1, the same login and Host checks."""
    with served_desk(manifest, listen="0.0.0.0:0") as desk:
        assert desk.login_url.startswith("http://127.0.0.1:")
        assert desk.request("GET", "/review/").status == 403
        assert desk.request("GET", "/review/", host="evil.example").status == 403
        session = desk.log_in()
        assert session.get("/review/").status == 200
    assert any("other machines can reach the desk" in line for line in desk.stderr_lines)


def test_listings_and_photos_read_numbers_as_numbers(tmp_path: Path) -> None:
    """5-walnut-way before 48-maple-ave; img-2 before img-10; exteriors first."""
    manifest = listing_photos(
        tmp_path,
        {
            "listings/48-maple-ave/inside": ["img-10.jpg", "img-2.jpg"],
            "listings/5-walnut-way/inside": ["b.jpg"],
            "listings/5-walnut-way/outdoor": ["a.jpg"],
        },
    )
    text = manifest.read_text().replace(
        '"listings/5-walnut-way/outdoor"\n    space: indoor',
        '"listings/5-walnut-way/outdoor"\n    space: outdoor',
    )
    manifest.write_text(text)
    with served_desk(manifest) as desk:
        state = desk.log_in().state()
    assert [entry["name"] for entry in state["listings"]] == ["5-walnut-way", "48-maple-ave"]  # type: ignore[index, union-attr]
    assert [p["name"] for p in state["photos"]] == ["a.jpg", "b.jpg", "img-2.jpg", "img-10.jpg"]  # type: ignore[union-attr, index]
    tools = {(p["tool"], p["space"], tuple(p["enhancements"])) for p in state["photos"]}  # type: ignore[union-attr, index]
    assert tools == {("Image Enhancement", "Indoor", ("Add Fire to Fireplace",))}
