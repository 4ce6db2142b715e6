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

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from yarl import URL

from pipeline.api import DEFAULT_BASE_URL
from pipeline.ledger.stores import is_url

LEDGER_ENV = "AIHD_LEDGER"
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
    env = os.environ if env is None else env
    return env.get("AIHD_BASE_URL", "").strip() or DEFAULT_BASE_URL


def key_fingerprint(api_key: str) -> str:
    """A short, one-way mark of the key an order was sent with (never the key itself)."""
    return hashlib.sha256(b"aihd key fingerprint\x00" + api_key.encode()).hexdigest()[:12]
