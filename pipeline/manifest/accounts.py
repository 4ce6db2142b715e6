"""Which ledger a command uses: the account's, unless one is named.

The money and the order window belong to the API account, not to a manifest file or a key, so
by default every manifest of one account on one machine shares one ledger: one SQLite file per
API endpoint and account name under the user's state folder
(``$XDG_STATE_HOME/aihd/``, ``~/.local/state/aihd/`` by default). A copy or rename of a
manifest, a second manifest listing the same folder, or a rotated key all find the same
ledger, so nothing is paid twice. The local emulator is another endpoint: its orders never mix
with the real API's. ``--ledger``, then ``AIHD_LEDGER``, then the manifest's ``ledger:`` choose
another file.
"""

from __future__ import annotations

__all__ = [
    "LEDGER_ENV",
    "SANDBOX_ENDPOINT",
    "account_ledger",
    "base_url_from_env",
    "chosen_ledger",
    "emulator_state",
    "endpoint_name",
    "key_fingerprint",
    "state_folder",
    "window_account",
]

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from yarl import URL

from pipeline.api import DEFAULT_BASE_URL
from pipeline.errors import UsageError
from pipeline.ledger.stores import is_url

LEDGER_ENV = "AIHD_LEDGER"
BASE_URL_ENV = "AIHD_BASE_URL"
SANDBOX_ENDPOINT = "sandbox"  # every local emulator is one endpoint of its own
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def state_folder(env: Mapping[str, str] | None = None) -> Path:
    """The user's state folder for aihd (XDG base directory specification)."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "aihd"


def endpoint_name(base_url: str, *, sandbox: bool = False) -> str:
    """The API endpoint as a file-name part: host, and port when it is not the scheme's."""
    if sandbox:
        return SANDBOX_ENDPOINT
    url = URL(base_url)
    host = (url.host or "unknown").lower()
    if url.explicit_port is not None and not url.is_default_port():
        host += f"_{url.port}"
    return _UNSAFE.sub("_", host)


def account_ledger(
    base_url: str, account: str, *, sandbox: bool = False, env: Mapping[str, str] | None = None
) -> Path:
    """The default ledger of an account at an endpoint."""
    name = f"{_UNSAFE.sub('_', account)}@{endpoint_name(base_url, sandbox=sandbox)}.ledger.sqlite"
    return state_folder(env) / name


def window_account(base_url: str, account: str, *, sandbox: bool = False) -> str:
    """The account whose order window an order takes a place in: the API endpoint and the
    account name, as the default ledger is named. Not the key: a rotated key is the same
    account, and its window must count the old key's orders."""
    return f"{account}@{endpoint_name(base_url, sandbox=sandbox)}"


def chosen_ledger(
    option: Path | str | None,
    manifest_ledger: Path | str | None,
    base_url: str,
    account: str,
    *,
    sandbox: bool = False,
    env: Mapping[str, str] | None = None,
) -> Path | str:
    """--ledger, else AIHD_LEDGER, else the manifest's ``ledger:``, else the account's; a
    ``postgresql://`` URL is passed through untouched (pipeline/ledger/postgres.py)."""
    env = os.environ if env is None else env
    if option is not None:
        return option
    if named := env.get(LEDGER_ENV, "").strip():
        return named if is_url(named) else Path(named).expanduser()
    if manifest_ledger is not None:
        return manifest_ledger
    return account_ledger(base_url, account, sandbox=sandbox, env=env)


def emulator_state(ledger: Path | str) -> Path:
    """Where the in-process local emulator of ``--sandbox`` keeps its orders between runs:
    beside the sandbox ledger (a ``postgresql://`` one: under the state folder, by its URL)."""
    if is_url(ledger):
        tag = hashlib.sha256(str(ledger).encode()).hexdigest()[:12]
        return state_folder() / f"sandbox-{tag}.emulator"
    path = Path(ledger)
    return path.with_name(f"{path.name}.emulator")


def base_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """AIHD_BASE_URL, checked (``checked_base_url``), or the real API's address."""
    env = os.environ if env is None else env
    text = env.get(BASE_URL_ENV, "").strip()
    return checked_base_url(text, BASE_URL_ENV) if text else DEFAULT_BASE_URL


_CREDENTIALS = re.compile(r"(//)[^/@]*@")


def checked_base_url(text: str, where: str) -> str:
    """``text`` if it is an http(s) URL aihd can call, else a UsageError naming ``where``.

    Refused: what does not parse (a port out of range, an unclosed ``[``), another scheme, no
    host, port 0, a query or fragment (dropped by every call, so a typo), and a user name or
    password: the key goes in a header, and a URL is printed in messages, so a password in it
    would be too (it is never echoed here either).
    """
    shown = _CREDENTIALS.sub(r"\1<redacted>@", text)
    fix = f"set {where} to the API's address, e.g. {DEFAULT_BASE_URL}, or unset it"
    try:
        url = URL(text)
        port = url.explicit_port
    except ValueError as exc:
        raise UsageError(f"{where}={shown!r} is not a URL ({exc}): {fix}") from None
    if url.scheme not in ("http", "https"):
        raise UsageError(f"{where}={shown!r} is not an http(s) URL: {fix}")
    host = url.raw_host or ""
    if not host or any(c.isspace() or not c.isprintable() for c in host):
        raise UsageError(f"{where}={shown!r} has no valid host name: {fix}")
    if port == 0:
        raise UsageError(f"{where}={shown!r}: port 0 is no port to call (1 to 65535): {fix}")
    if url.user is not None or url.password is not None:
        raise UsageError(
            f"{where}={shown!r} holds a user name or password: the API key goes in a header "
            "(AIHD_API_KEY), never in the URL; remove them"
        )
    if url.raw_query_string or url.raw_fragment:
        raise UsageError(f"{where}={shown!r} has a query or fragment ('?', '#'): {fix}")
    return text


def key_fingerprint(api_key: str) -> str:
    """A short, one-way mark of the key an order was sent with (never the key itself)."""
    return hashlib.sha256(b"aihd key fingerprint\x00" + api_key.encode()).hexdigest()[:12]
