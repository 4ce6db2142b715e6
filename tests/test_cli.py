"""Every command explains itself with an example; small commands do what they say."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.sandbox import Sandbox
from tests.cli_helpers import aihd


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert (main.commands[command].help or "").strip()


def test_top_level_help_lists_the_commands_with_an_example() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    for command in ("run", "collect", "status", "export", "catalog", "sandbox", "schema"):
        assert command in result.output


def test_schema_is_json_schema_of_the_manifest() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"version", "folders", "rate_limit"} <= set(schema["properties"])


def test_catalog_prints_spaces_and_toggles(sandbox: Sandbox) -> None:
    done = aihd(["catalog"], sandbox)
    assert done.returncode == 0, done.stderr
    assert "Indoor" in done.stdout and "Add Fire to Fireplace" in done.stdout
    assert "Remove Extra Objects" in done.stdout


def test_status_without_a_ledger_says_how_to_get_one() -> None:
    done = aihd(["status", "/nonexistent/photos.ledger.sqlite"], None)
    assert done.returncode == 2
    assert "aihd run" in done.stderr and "Traceback" not in done.stderr


def test_a_postgresql_ledger_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg is the `postgres` extra: without it, one line naming the install, exit 2."""
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["status", "postgresql://aihd@db.example.lan/aihd"])
    assert result.exit_code == 2, result.output
    assert "pip install 'aihd[postgres]'" in result.output
    assert "Traceback" not in result.output
