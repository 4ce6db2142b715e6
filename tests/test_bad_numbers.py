"""Every bad number or URL is one clear line naming what, where and the fix: exit 2, nothing
spent, no traceback (issue 20, item 12). In process, through Click's CliRunner."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from pipeline.sandbox import Sandbox
from tests.cli_helpers import TEST_STATE_HOME, write_manifest

PhotoFactory = Callable[..., Path]


def _invoke(
    args: Sequence[str], sandbox: Sandbox | None, env: Mapping[str, str] | None = None
) -> Result:
    environment = {"XDG_STATE_HOME": TEST_STATE_HOME, "AIHD_BASE_URL": "", "AIHD_LEDGER": ""}
    if sandbox is not None:
        environment |= {"AIHD_BASE_URL": sandbox.url, "AIHD_API_KEY": sandbox.api_key}
    return CliRunner().invoke(main, list(args), env={**environment, **(env or {})})


def _one_clear_line(result: Result) -> str:
    """Exit 2, no traceback, and exactly one error line (aihd's own, or Click's usage error)."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith(("aihd: error:", "Error:"))]
    return line


def _nothing_spent(sandbox: Sandbox) -> None:
    stats = sandbox.stats()
    assert stats.uploads == 0 and stats.order_posts == 0 and stats.process_posts == 0


@pytest.fixture
def manifest(tmp_path: Path, photo_factory: PhotoFactory) -> Path:
    photo_factory(tmp_path / "inside", "room.jpg")
    return write_manifest(tmp_path, {"inside": ("indoor", [])})


# Options of run and collect ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--request-timeout", "nan"),
        ("--request-timeout", "inf"),
        ("--request-timeout", "-1"),
        ("--request-timeout", "0"),
        ("--request-timeout", "1e308"),
        ("--request-timeout", "soon"),
        ("--settle", "nan"),
        ("--settle", "inf"),
        ("--settle", "-inf"),
        ("--settle", "-1"),
        ("--settle", "1e9"),
        ("--concurrency", "0"),
        ("--concurrency", "257"),
        ("--concurrency", "nan"),
        ("--max-orders", "-1"),
        ("--max-orders", "nan"),
        ("--max-duration", "nan"),
        ("--max-duration", "inf"),
        ("--max-duration", "-5m"),
        ("--max-duration", "99999999999d"),
        ("--max-duration", "1e400h"),
    ],
)
def test_a_bad_number_for_run_is_one_line_naming_the_option_and_nothing_is_spent(
    sandbox: Sandbox, manifest: Path, option: str, value: str
) -> None:
    """Refused before anything is read from the API: the option, the value, the range or an
    example of a good one."""
    result = _invoke(["run", str(manifest), "--no-progress", option, value], sandbox)
    line = _one_clear_line(result)
    assert option in line and value in line, line
    assert "e.g." in line or "range" in line, line
    _nothing_spent(sandbox)
    assert sandbox.stats().requests == {}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--wait", "--timeout", "nan"], "--timeout"),
        (["--wait", "--timeout", "1e400h"], "--timeout"),
        (["--request-timeout", "nan"], "--request-timeout"),
        (["--request-timeout", "-inf"], "--request-timeout"),
    ],
)
def test_a_bad_number_for_collect_is_one_line_naming_the_option(
    sandbox: Sandbox, manifest: Path, args: list[str], named: str
) -> None:
    result = _invoke(["collect", str(manifest), "--no-progress", *args], sandbox)
    assert named in _one_clear_line(result)
    assert sandbox.stats().requests == {}


# The local emulator's options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--window", "10/nan"], "--window"),
        (["--window", "10/inf"], "--window"),
        (["--window", "10/-1"], "--window"),
        (["--window", "0/600"], "--window"),
        (["--window", "nan/600"], "--window"),
        (["--window", "10/1e9"], "--window"),
        (["--time-scale", "nan"], "--time-scale"),
        (["--time-scale", "inf"], "--time-scale"),
        (["--latency", "nan"], "--latency"),
        (["--latency", "1e308"], "--latency"),
        (["--error-rate", "nan"], "--error-rate"),
        (["--error-rate", "2"], "--error-rate"),
        (["--reset-rate", "nan"], "--reset-rate"),
        (["--lost-after-charge-rate", "-0.5"], "--lost-after-charge-rate"),
        (["--error-after-charge-rate", "nan"], "--error-after-charge-rate"),
        (["--details-lag", "nan"], "--details-lag"),
        (["--details-lag", "1e308"], "--details-lag"),
    ],
)
def test_a_bad_number_for_the_sandbox_is_one_line_before_it_serves(
    args: list[str], named: str
) -> None:
    result = _invoke(["sandbox", "--port", "0", *args], None)
    line = _one_clear_line(result)
    assert named in line and "e.g." in line, line
    assert "local emulator" not in result.output  # it never started serving


# AIHD_BASE_URL and AIHD_LEDGER_RETRY_SECONDS -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:-1", "Port out of range"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:0", "port 0"),
        ("ftp://127.0.0.1", "not an http(s) URL"),
        ("localhost:8080", "not an http(s) URL"),
        ("127.0.0.1", "not an http(s) URL"),
        ("http://", "no valid host"),
        ("http:///v1", "no valid host"),
        ("https://api.example com", "no valid host"),
        ("https://api.aihomedesign.com/?key=1", "query or fragment"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "run", "status", "collect"])
def test_a_bad_aihd_base_url_is_one_line_naming_the_variable(
    manifest: Path, url: str, said: str, command: str
) -> None:
    """For commands that call the API and for those that only name the account's ledger."""
    args = [command, str(manifest)] + (["--no-progress"] if command in ("run", "collect") else [])
    result = _invoke(args, None, env={"AIHD_BASE_URL": url, "AIHD_API_KEY": "a-key-of-some-length"})
    line = _one_clear_line(result)
    assert line.startswith("aihd: error: AIHD_BASE_URL=") and said in line, line
    if "not an http" in said or "host" in said:
        assert "e.g. https://api.aihomedesign.com" in line


def test_a_password_in_aihd_base_url_is_refused_and_never_echoed(manifest: Path) -> None:
    result = _invoke(
        ["plan", str(manifest)],
        None,
        env={
            "AIHD_BASE_URL": "https://someone:hunter2secret@api.aihomedesign.com",
            "AIHD_API_KEY": "a-key-of-some-length",
        },
    )
    line = _one_clear_line(result)
    assert "user name or password" in line and "AIHD_API_KEY" in line
    assert "hunter2secret" not in result.output and "someone" not in result.output


def test_a_bad_aihd_base_url_does_not_stop_a_sandbox_run(manifest: Path, tmp_path: Path) -> None:
    """--sandbox starts its own emulator: the variable is not read, so not refused."""
    result = _invoke(
        ["plan", str(manifest), "--sandbox"], None, env={"AIHD_BASE_URL": "http://[::1"}
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon", "1e9"])
def test_a_bad_ledger_retry_time_is_one_line_before_any_connection(value: str) -> None:
    result = _invoke(
        ["status", "postgresql://aihd@127.0.0.1:1/none"],
        None,
        env={"AIHD_LEDGER_RETRY_SECONDS": value},
    )
    line = _one_clear_line(result)
    assert f"AIHD_LEDGER_RETRY_SECONDS={value!r}" in line and "e.g." in line, line


# Numbers in the manifest -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("concurrency: 4", "concurrency: .nan", ":2: concurrency: must be a whole number"),
        ("concurrency: 4", "concurrency: .inf", ":2: concurrency: must be a whole number"),
        ("concurrency: 4", "concurrency: -1", ":2: concurrency: must be at least 1"),
        ("concurrency: 4", "concurrency: 1000000000", ":2: concurrency: must be at most 256"),
        ("orders: 1000", "orders: 0", ":3: rate_limit.orders: must be at least 1"),
        ("orders: 1000", "orders: .nan", ":3: rate_limit.orders: must be a whole number"),
        ("orders: 1000", "orders: 10000000000", ":3: rate_limit.orders: must be at most 100000"),
        ("per_seconds: 600", "per_seconds: .nan", ":3: rate_limit.per_seconds: must be a finite"),
        ("per_seconds: 600", "per_seconds: .inf", ":3: rate_limit.per_seconds: must be a finite"),
        ("per_seconds: 600", "per_seconds: -600", ":3: rate_limit.per_seconds: must be more than"),
        ("per_seconds: 600", "per_seconds: 1e9", ":3: rate_limit.per_seconds: must be at most"),
        ("attempts: 5", "attempts: 0", ":4: retry.attempts: must be at least 1"),
        ("attempts: 5", "attempts: .nan", ":4: retry.attempts: must be a whole number"),
        ("max_backoff: 0.2", "max_backoff: .nan", ":4: retry.max_backoff: must be a finite"),
        ("max_backoff: 0.2", "max_backoff: -.inf", ":4: retry.max_backoff: must be a finite"),
        ("max_backoff: 0.2", "max_backoff: 1.0e308", ":4: retry.max_backoff: must be at most"),
        ("max_backoff: 0.2", "max_backoff: 0", ":4: retry.max_backoff: must be more than"),
    ],
)
def test_a_bad_number_in_the_manifest_is_one_line_with_file_line_and_key(
    sandbox: Sandbox, manifest: Path, old: str, new: str, said: str
) -> None:
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))
    for command in (["plan", str(manifest)], ["run", str(manifest), "--no-progress"]):
        line = _one_clear_line(_invoke(command, sandbox))
        assert f"{manifest}{said}" in line, line
    _nothing_spent(sandbox)


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("max_megabytes", ".nan", "must be a finite number"),
        ("max_megabytes", "1.0e308", "must be at most 1000"),
        ("max_megabytes", "0", "must be more than 0"),
        ("min_width", "10000000000", "must be at most 20000"),
        ("min_height", "-1", "must be at least 1"),
        ("quality", ".inf", "must be a whole number"),
    ],
)
def test_a_bad_number_in_a_delivery_profile_is_one_line_with_its_key(
    sandbox: Sandbox, manifest: Path, key: str, value: str, said: str
) -> None:
    with manifest.open("a") as out:
        out.write(f"delivery_profiles:\n  mine:\n    {key}: {value}\n")
    line = _one_clear_line(_invoke(["plan", str(manifest)], sandbox))
    assert f"delivery_profiles.mine.{key}: {said}" in line, line
    _nothing_spent(sandbox)
