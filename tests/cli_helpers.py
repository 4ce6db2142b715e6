"""Running the real ``aihd`` command in a subprocess against a sandbox, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.ledger import PhotoRow, open_ledger
from pipeline.sandbox import Sandbox

FAST = ["--no-progress", "--request-timeout", "3", "--settle", "0.2"]
TEST_STATE_HOME = tempfile.mkdtemp(prefix="aihd-test-state-")


def aihd_env(
    sandbox: Sandbox | None, *, key: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment, like cron's, plus where the API is (and ``extra``)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(Path.home())),
        "LANG": "C.UTF-8",
        # Account ledgers of the tests never land in the user's own state folder.
        "XDG_STATE_HOME": TEST_STATE_HOME,
        **(extra or {}),
    }
    if sandbox is not None:
        env["AIHD_BASE_URL"] = sandbox.url
        env["AIHD_API_KEY"] = key if key is not None else sandbox.api_key
    return env


def aihd(
    args: Sequence[str],
    sandbox: Sandbox | None,
    *,
    key: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=aihd_env(sandbox, key=key, extra=env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def spawn_aihd(
    args: Sequence[str],
    sandbox: Sandbox,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        env=aihd_env(sandbox, extra=env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
    )


def write_manifest(
    root: Path,
    folders: dict[str, tuple[str, list[str]]],
    *,
    orders: int = 1000,
    per_seconds: float = 600,
    concurrency: int = 4,
    attempts: int = 5,
    max_backoff: float = 0.2,
    name: str = "photos.yaml",
    ledger: str | None = "",
    account: str | None = None,
    api: str | None = None,
    folder_keys: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """folders: name -> (space, enhancements); each folder must exist under root.

    ``ledger``: "" (the default) writes `ledger: <name>.ledger.sqlite` beside the manifest,
    as most tests read it; None leaves the key out, so the account's ledger is used.
    ``api``: writes `api: <api>` last; ``folder_keys``: more keys of a folder's entry (tool,
    room, style, project), written after its enhancements."""
    lines = [
        "version: 1",
        f"concurrency: {concurrency}",
        f"rate_limit: {{orders: {orders}, per_seconds: {per_seconds}}}",
        f"retry: {{attempts: {attempts}, max_backoff: {max_backoff}}}",
        "folders:",
    ]
    for folder, (space, enhancements) in folders.items():
        lines.append(f"  - path: {folder}")
        lines.append(f"    space: {space}")
        lines.append(f"    enhancements: {enhancements!r}")
        for key, value in (folder_keys or {}).get(folder, {}).items():
            lines.append(f"    {key}: {value}")
    # Last, so the lines tests name in messages are where they always were.
    if ledger is not None:
        lines.append(f"ledger: {ledger or Path(name).stem + '.ledger.sqlite'}")
    if account is not None:
        lines.append(f"account: {account}")
    if api is not None:
        lines.append(f"api: {api}")
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def ledger_rows(manifest: Path) -> list[PhotoRow]:
    ledger = open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        return ledger.photos()
    finally:
        ledger.close()
