"""The review desk run as a user runs it (``aihd review MANIFEST --serve``), and plain HTTP to
it with every header under the test's control (``http.client``: Host, Origin, cookies)."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from pipeline import api
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, open_ledger
from tests.cli_helpers import aihd_env

_CSRF = re.compile(r'<meta name="aihd-csrf" content="([^"]+)">')


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Desk:
    """A running desk: its first login link, its address, its process and what it printed."""

    login_url: str
    process: subprocess.Popen[str]
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.login_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        return urlsplit(self.login_url).netloc

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        host: str | None = None,
    ) -> Answer:
        """One request; ``host`` replaces the Host header (a DNS-rebinding page sends its own)."""
        parts = urlsplit(self.login_url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host if host is not None else self.host)
            data = b""
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent = {"Content-Length": str(len(data)), **(headers or {})}
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders(data)
            answer = conn.getresponse()
            return Answer(answer.status, answer.headers, answer.read())
        finally:
            conn.close()

    def log_in(self, login_url: str | None = None) -> Browserless:
        """Log in with a login link (the printed one by default), as a browser would."""
        link = urlsplit(login_url or self.login_url)
        answer = self.request("GET", f"{link.path}?{link.query}")
        assert answer.status == 303, answer.text
        cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
        page = self.request("GET", "/review/", headers={"Cookie": cookie})
        assert page.status == 200, page.text
        found = _CSRF.search(page.text)
        assert found is not None
        return Browserless(self, cookie, found.group(1))


@dataclass
class Browserless:
    """A logged-in session spoken to with plain HTTP: its cookie and CSRF token."""

    desk: Desk
    cookie: str
    csrf: str

    def get(self, path: str) -> Answer:
        return self.desk.request("GET", path, headers={"Cookie": self.cookie})

    def post(self, path: str, body: object, **headers: str) -> Answer:
        sent = {
            "Cookie": self.cookie,
            "Origin": self.desk.origin,
            "X-Aihd-Csrf": self.csrf,
            "Content-Type": "application/json",
        }
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        return self.desk.request(
            "POST", path, headers={k: v for k, v in sent.items() if v}, body=body
        )

    def state(self) -> dict[str, object]:
        answer = self.get("/review/api/state")
        assert answer.status == 200, answer.text
        document = answer.json()
        assert isinstance(document, dict)
        return document


@contextmanager
def served_desk(
    manifest: Path, *args: str, env: Mapping[str, str] | None = None, listen: str = "127.0.0.1:0"
) -> Iterator[Desk]:
    """``aihd review MANIFEST --serve`` until the block ends (then SIGTERM: it exits 0)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "review",
            str(manifest),
            "--serve",
            "--listen",
            listen,
            *args,
        ],
        env=aihd_env(None, extra=env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline().strip() if ready else ""
    if not line.startswith("http://"):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"the desk printed no login link: {line!r}\n{err}")
    desk = Desk(line, process)
    try:
        yield desk
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        desk.stderr_lines = err.splitlines()
        assert process.returncode == 0, err
        assert "Traceback" not in err, err


def listing_photos(
    root: Path,
    folders: Mapping[str, Sequence[str]],
    *,
    waiting: Sequence[str] = (),
    manifest: str = "desk.yaml",
    ledger: str = "",
) -> Path:
    """A manifest of ``folders`` (path -> photo names) and its ledger beside it, each photo
    collected (a real JPEG original and result) but those named in ``waiting`` (ordered,
    result not collected yet). Put in the ledger directly, as a sandbox run would leave it:
    what the desk shows of them is the same, and tests spend no time ordering. The ledger is
    ``LEDGER.ledger.sqlite`` beside it (by default the manifest's name)."""
    ledger_file = f"{ledger or Path(manifest).stem}.ledger.sqlite"
    lines = ["version: 1", f"ledger: {ledger_file}", "folders:"]
    for folder in folders:
        lines += [f"  - path: {json.dumps(folder)}", "    space: indoor"]
    path = root / manifest
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    opened = open_ledger(root / ledger_file)
    options = PhotoOptions(api.SERVICE, "space-ie-indoor", ("add fire to fireplace",))
    try:
        n = len(opened.photos())
        with opened.grouped():
            for folder, names in folders.items():
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / "enhanced" / folder).mkdir(parents=True, exist_ok=True)
                for name in names:
                    n += 1
                    _photo(opened, root, folder, name, n, options, name not in waiting)
    finally:
        opened.close()
    return path


def _photo(
    ledger: Ledger, root: Path, folder: str, name: str, n: int, options: PhotoOptions, done: bool
) -> None:
    original = root / folder / name
    result = root / "enhanced" / folder / name
    Image.new("RGB", (160, 120), (n * 37 % 250, 90, 140)).save(original, "JPEG")
    Image.new("RGB", (160, 120), (n * 37 % 250, 150, 90)).save(result, "JPEG")
    st = original.stat()
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    found = FoundPhoto(str(original), folder, st.st_size, st.st_mtime_ns, digest, options)
    (row,) = ledger.record_found([found])
    ledger.mark_uploaded(row.id, f"order-{n}")
    ledger.mark_submitting(row.id)
    ledger.mark_submitted(row.id, f"image-{n}", 30)
    if done:
        ledger.mark_completed(row.id, [f"http://results/{n}"], [str(result)])


def reviews_by_name(manifest: Path) -> dict[str, tuple[str, str | None, str | None]]:
    """The ledger's decisions: file name -> (decision, reason, source)."""
    ledger = open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        names = {r.id: Path(r.path).name for r in ledger.photos()}
        return {
            names[i]: (review.decision.value, review.reason, review.source)
            for i, review in ledger.reviews().items()
        }
    finally:
        ledger.close()


def photo_ids(manifest: Path) -> dict[str, int]:
    """Photo ids by file name."""
    ledger = open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        return {Path(r.path).name: r.id for r in ledger.photos()}
    finally:
        ledger.close()
