"""Running the real ``aihd`` command against a sandbox, as a user would.

``aihd()`` runs the command in this process through Click's ``CliRunner`` (a new process costs
~1 s of start-up, and most tests are about what the command does, not about the process): the
same entry point, arguments, environment (nothing but ``aihd_env``'s), working folder and
``sys.argv`` as ``python -m pipeline`` would have, stdin empty, and an uncaught exception
written to stderr as the interpreter would. ``aihd_process()`` and ``spawn_aihd()`` start a
real process: for a test about a process (a kill, a signal, runs side by side, start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from click.testing import CliRunner

import pipeline
from pipeline.cli import main  # what `python -m pipeline` runs
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
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``aihd args`` run in this process; its exit code, stdout and stderr.

    ``timeout`` is kept for the calls written for a process: in this one, pytest-timeout
    (``timeout`` in pyproject.toml) ends a call that hangs, and fails its test.
    """
    suspended = _suspended_loop()
    if suspended is False:
        # A coroutine of this thread's event loop waits on this call: no room for the
        # command's own loop, so it runs in a process.
        return aihd_process(args, sandbox, key=key, timeout=timeout or 120, cwd=cwd, env=env)
    del timeout
    environment = aihd_env(sandbox, key=key, extra=env)
    # Unset every variable aihd_env does not give, as the process's minimal environment would.
    overrides: dict[str, str | None] = dict.fromkeys(os.environ)
    overrides.update(environment)
    argv = [sys.executable, "-m", "pipeline", *args]
    with _as_a_process(list(args), cwd), _loop_mark_lifted(suspended):
        result = CliRunner().invoke(main, list(args), env=overrides, prog_name="python -m pipeline")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # as python prints it
    return subprocess.CompletedProcess(argv, result.exit_code, result.stdout, stderr)


def _suspended_loop() -> asyncio.AbstractEventLoop | Literal[False] | None:
    """None: no event loop runs in this thread. A loop: one is marked running here but waits,
    suspended (Playwright's sync API marks its loop running in the test's thread between two
    of its calls, while the loop waits in a greenlet of its own). False: a task of the
    running loop is what called (the command cannot run its own loop beside it)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return False if asyncio.current_task(loop) is not None else loop


@contextlib.contextmanager
def _loop_mark_lifted(loop: asyncio.AbstractEventLoop | None) -> Iterator[None]:
    """The suspended loop's mark lifted while the command runs its own loop, as it would in
    a process of its own (the suspended one runs nothing meanwhile: this thread is busy);
    put back after, so the test's next Playwright call finds its loop as it left it."""
    if loop is None:
        yield
        return
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)


@contextlib.contextmanager
def _as_a_process(args: list[str], cwd: Path | None) -> Iterator[None]:
    """sys.argv and the working folder of ``python -m pipeline``; the "aihd" logger as found
    (the CLI sets its handlers on the streams of the one call, then they are closed)."""
    logger = logging.getLogger("aihd")
    kept = (list(logger.handlers), logger.level, logger.propagate)
    saved_argv = sys.argv
    sys.argv = [str(Path(pipeline.__file__).with_name("__main__.py")), *args]
    try:
        with contextlib.chdir(cwd or Path.cwd()):
            yield
    finally:
        sys.argv = saved_argv
        for handler in list(logger.handlers):
            if handler not in kept[0]:
                logger.removeHandler(handler)
                handler.close()
        logger.handlers[:] = kept[0]
        logger.setLevel(kept[1])
        logger.propagate = kept[2]


def aihd_process(
    args: Sequence[str],
    sandbox: Sandbox | None,
    *,
    key: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``aihd args`` in a process of its own, as ``aihd()`` but a real process."""
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
