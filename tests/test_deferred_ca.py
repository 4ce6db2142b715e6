"""aiohttp imported through pipeline/api/deferred_ca.py loads the CA certificates at its first
TLS connection, not at import, and still verifies: a real HTTPS server on loopback with a
certificate of a test CA is reached when that CA is the system's (SSL_CERT_FILE) and refused
when it is not, on asyncio's loop and on uvloop. Each client is a fresh interpreter, as a run."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLIENT = """
import asyncio, sys
from pipeline.api.deferred_ca import aiohttp  # how transport.py imports it, at a download
import aiohttp.connector
verifying = aiohttp.connector._SSL_CONTEXT_VERIFIED
print("deferred" if type(verifying).__name__ == "_DeferredCA" and verifying._load_pending
      else "loaded at import")

async def main():
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(sys.argv[1]) as answer:
                print(answer.status, await answer.text())
        except aiohttp.ClientConnectorCertificateError as exc:
            print("refused:", exc.certificate_error.verify_message)

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for localhost: (ca, cert, key)."""
    folder.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name} test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
             cwd=folder)  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(our CA, the server's certificate and key it signed, another CA that did not sign it):
    made once for the module (four RSA keys: seconds of CPU; its tests run on one worker:
    conftest.py's SHARED_FIXTURE_MODULES)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make test certificates")
    folder = tmp_path_factory.mktemp("certificates")
    ca, cert, key = _certificates(folder / "ours", "aihd")
    other_ca, _, _ = _certificates(folder / "other", "other")
    return ca, cert, key, other_ca


@pytest.fixture
def https_url(certificates: tuple[Path, Path, Path, Path]) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS server on loopback: (its URL, its CA, another CA that did not sign it)."""
    ca, cert, key, other_ca = certificates
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/", ca, other_ca
    finally:
        server.shutdown()
        server.server_close()


def _client(script: str, url: str, loop: str, trusted: Path) -> list[str]:
    """What ``script`` prints, run in a fresh interpreter whose system CA is ``trusted``."""
    env = {"SSL_CERT_FILE": str(trusted), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script, url, loop], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_ca_certificates_load_at_the_first_tls_connection_and_still_verify(
    https_url: tuple[str, Path, Path], loop: str
) -> None:
    url, ca, other_ca = https_url
    assert _client(CLIENT, url, loop, ca) == ["deferred", "200 hello"]
    deferred, refused = _client(CLIENT, url, loop, other_ca)
    assert deferred == "deferred"
    assert refused == "refused: unable to get local issuer certificate"


API_CLIENT = """
import asyncio, sys
from pipeline.api.v1 import ApiClient
from pipeline.errors import ApiError

async def main():
    async with ApiClient(sys.argv[1].rstrip("/"), "key") as client:
        try:
            await client._json("GET", "/")
        except ApiError as exc:
            print(type(exc).__name__, exc)

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_api_calls_verify_the_servers_certificate(
    https_url: tuple[str, Path, Path], loop: str
) -> None:
    """The API's JSON calls (pipeline/api/http1.py, not aiohttp's session) use the same
    verifying context: reached with the system's CA, refused (nothing sent) without it."""
    url, ca, other_ca = https_url
    # The server answers "hello": reached, verified, and not JSON.
    assert _client(API_CLIENT, url, loop, ca) == ["TransientError GET /: the answer is not JSON"]
    port = url.rsplit(":", 1)[1].rstrip("/")
    assert _client(API_CLIENT, url, loop, other_ca) == [
        f"ConnectFailed GET /: cannot connect to localhost:{port} "
        "(certificate refused: unable to get local issuer certificate)"
    ]
