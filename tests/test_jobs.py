"""The scheduled jobs in jobs/: valid units and cron lines whose commands really work."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.sandbox import Sandbox
from tests.cli_helpers import aihd_env, write_manifest

JOBS = Path(__file__).resolve().parent.parent / "jobs"
UNITS = [
    "aihd-nightly.service",
    "aihd-nightly.timer",
    "aihd-collect.service",
    "aihd-collect.timer",
    "aihd-serve.service",
]


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(JOBS / name)
    return parser


def _aihd_args(command_line: str) -> list[str]:
    """The arguments after the `aihd` binary in a unit's ExecStart or a cron line."""
    words = shlex.split(command_line.split("&&")[-1].split(">")[0])
    return words[[w.endswith("/aihd") for w in words].index(True) + 1 :]


@pytest.mark.parametrize("name", ["aihd-nightly.service", "aihd-collect.service"])
def test_services_are_oneshot_read_the_key_from_a_file_and_accept_exit_4(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["Type"] == "oneshot"
    assert service["EnvironmentFile"].endswith("aihd.env")
    assert "4" in service["SuccessExitStatus"].split()
    assert "Restart" not in service  # a budget stop must not loop
    assert "AIHD_API_KEY" not in (JOBS / name).read_text().split("aihd.env")[-1]
    args = _aihd_args(service["ExecStart"])
    assert args[0] in ("run", "collect") and "--no-progress" in args and "--json" in args


def test_timers_fire_at_night_and_in_the_morning() -> None:
    assert _unit("aihd-nightly.timer")["Timer"]["OnCalendar"].endswith("22:00:00")
    assert _unit("aihd-collect.timer")["Timer"]["OnCalendar"].endswith("05:30:00")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for name in UNITS:
        text = (JOBS / name).read_text()
        # verify needs the binary to exist; the env file may be missing ("-" prefix).
        text = text.replace("%h/aihd/.venv/bin/aihd", str(Path(sys.executable).parent / "aihd"))
        text = text.replace("EnvironmentFile=%h", "EnvironmentFile=-%h")
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_cron_lines_have_five_time_fields_and_the_same_commands() -> None:
    lines = [
        line
        for line in (JOBS / "crontab.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 2
    for line, unit in zip(lines, ["aihd-nightly.service", "aihd-collect.service"], strict=True):
        fields = line.split()
        assert all(f.replace("*", "0").isdigit() for f in fields[:5])
        unit_args = _aihd_args(_unit(unit)["Service"]["ExecStart"])
        assert [a.replace("$HOME", "%h") for a in _aihd_args(line)] == unit_args


@pytest.mark.parametrize("source", ["unit", "cron"])
def test_the_nightly_command_runs_without_a_terminal_and_leaves_a_trail(
    source: str,
    make_sandbox: Callable[..., Sandbox],
    photo_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.2)
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    if source == "unit":
        line = _unit("aihd-nightly.service")["Service"]["ExecStart"]
    else:
        line = (JOBS / "crontab.example").read_text().splitlines()[2]
    args = [
        str(manifest)
        if a.endswith("listings.yaml")
        else str(tmp_path / "n.log")
        if a.endswith(".log")
        else a
        for a in _aihd_args(line)
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=aihd_env(sandbox),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["states"] == {"submitted": 3}
    assert "\r" not in done.stderr and "%|" not in done.stderr  # no progress bar
    log = (tmp_path / "n.log").read_text()
    assert "aihd run started" in log and "aihd run finished" in log
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} [A-Z]+ ")
    assert all(stamp.match(line) for line in log.splitlines()), log
    assert sandbox.api_key not in log + done.stdout + done.stderr


@pytest.mark.slow
def test_the_cron_lines_run_in_crons_environment_with_stderr_empty_on_a_clean_night(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Both cron lines, word for word, under sh with cron's bare environment: the key from
    aihd.env, the summary in the JSON file, the trail in the log, and nothing on stderr
    (cron mails whatever a job writes there)."""
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.2)
    home = tmp_path / "home"
    (home / ".config" / "aihd").mkdir(parents=True)
    (home / ".config" / "aihd" / "aihd.env").write_text(
        f"AIHD_API_KEY={sandbox.api_key}\nAIHD_BASE_URL={sandbox.url}\n"
    )
    venv_bin = home / "aihd" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "aihd").write_text(f'#!/bin/sh\nexec {sys.executable} -m pipeline "$@"\n')
    (venv_bin / "aihd").chmod(0o755)
    for n in range(2):
        photo_factory(home / "listings" / "12-oak" / "inside", f"p{n}.jpg")
    write_manifest(home / "listings", {"12-oak/inside": ("indoor", [])}, name="listings.yaml")
    cron_env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": "aihd"}
    lines = [
        line.split(None, 5)[5]
        for line in (JOBS / "crontab.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for line, name in zip(lines, ["nightly", "collect"], strict=True):
        done = subprocess.run(
            ["/bin/sh", "-c", line],
            env=cron_env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == "" and done.stdout == ""
        state = home / ".local" / "state" / "aihd"
        summary = json.loads((state / f"{name}.json").read_text())
        assert sandbox.api_key not in (state / f"{name}.log").read_text()
    assert summary["completed"] == 2


@pytest.mark.slow
def test_the_serve_unit_restarts_on_failure_only_and_stops_within_its_timeout(
    make_sandbox: Callable[..., Sandbox], photo_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """The unit's own command line, stopped as systemd stops it (SIGTERM): exit 0 within
    TimeoutStopSec, after ordering the folder's photos; the trail in the log file."""
    import signal
    import time

    service = _unit("aihd-serve.service")["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3"}
    timeout = float(service["TimeoutStopSec"])
    args = _aihd_args(service["ExecStart"])
    assert args[0] == "serve" and "127.0.0.1:8787" in args
    sandbox = make_sandbox(eta_seconds=1)
    for n in range(2):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    args = [
        str(manifest)
        if a.endswith("listings.yaml")
        else str(tmp_path / "serve.log")
        if a.endswith(".log")
        else "127.0.0.1:0"
        if a == "127.0.0.1:8787"
        else a
        for a in args
    ]
    serving = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args, "--quiet-period", "1s"],
        env=aihd_env(sandbox, extra={"AIHD_WEBHOOK_SECRET": "w" * 32}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sandbox.stats().orders_charged < 2:
            assert time.monotonic() < deadline and serving.poll() is None
            time.sleep(0.05)
        started = time.monotonic()
        serving.send_signal(signal.SIGTERM)
        stdout, stderr = serving.communicate(timeout=60)
        assert serving.returncode == 0, stderr
        assert time.monotonic() - started < timeout  # the unit's stop timeout: a promise
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.communicate()
    log = (tmp_path / "serve.log").read_text()
    assert "listening on http://127.0.0.1:" in log and "w" * 32 not in log
    assert sandbox.api_key not in log + stderr
    # The desk's login link goes to stdout (the journal, under systemd), never to the log.
    (link,) = stdout.split()
    assert "/review/login?token=" in link and link.rsplit("=", 1)[1] not in log + stderr
