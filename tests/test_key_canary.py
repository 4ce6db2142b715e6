"""The key canary: under every hostile mode, no output and no file aihd writes holds the key.

The hostile emulator (tests/hostile_server.py) echoes the key in error bodies, puts it in
catalog titles and result URLs, and answers with huge, gzip'd or trickled JSON, huge, trickled
or bomb results, redirects and internal URLs. After `aihd run`, `aihd collect`, `aihd export`
(CSV to a file, JSON lines to stdout), `aihd status` and `aihd catalog`, the key must be in none
of their stdout, stderr or --json, and in no file under the test's folder: the ledger (and its
WAL), the log files, the export, and the names of the result folders and files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.cli_helpers import FAST, aihd, write_manifest
from tests.hostile_helpers import MakeHostile
from tests.hostile_server import MODES, Hostility

PhotoFactory = Callable[..., Path]
CANARY = "CANARY-hostile-5e2d8f0a41"


def _assert_nowhere(outputs: list[subprocess.CompletedProcess[str]], root: Path) -> None:
    for done in outputs:
        assert "Traceback" not in done.stderr, done.stderr
        for text in (done.stdout, done.stderr):
            assert CANARY not in text, (done.args, text)
    for path in root.rglob("*"):
        assert CANARY not in str(path.relative_to(root)), path
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_output_and_no_file_holds_the_key_under_a_hostile_server(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path, mode: str
) -> None:
    """Run, collect, export, status and catalog against the hostile mode: the key is nowhere."""
    sandbox, control = make_hostile(api_key=CANARY, time_scale=0, eta_seconds=0)
    for n in range(2):
        photo_factory(tmp_path / "inside", f"room{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, attempts=1)
    # The gzip bomb made smaller: the same misbehaviour, in a fraction of the emulator's CPU.
    hostility = replace(MODES[mode], gzip_answer_bytes=min(MODES[mode].gzip_answer_bytes, 64 << 20))
    ordering_is_hostile = hostility.echo_key or hostility.key_in_answers
    control.set(hostility if ordering_is_hostile else Hostility())
    logs = tmp_path / "logs"
    logs.mkdir()
    key = {"key": CANARY}
    outputs = [
        aihd(
            ["run", str(manifest), *FAST, "--json", "--log-file", str(logs / "run.log")],
            sandbox,
            **key,
        )
    ]
    control.set(hostility)
    outputs += [
        aihd(
            ["collect", str(manifest), "--json", "--no-progress", "--request-timeout", "1",
             "--log-file", str(logs / "collect.log")],
            sandbox,
            **key,
        ),
        aihd(["export", str(manifest), "-o", str(tmp_path / "export.csv")], sandbox, **key),
        aihd(["export", str(manifest), "--format", "jsonl"], sandbox, **key),
        aihd(["status", str(manifest)], sandbox, **key),
    ]  # fmt: skip
    if hostility.key_in_answers:  # the catalog misbehaves only in this mode
        outputs += [
            aihd(["catalog", "--json"], sandbox, **key),
            aihd(["plan", str(manifest), "--json"], sandbox, **key),
        ]
    assert outputs[0].returncode in (0, 1), outputs[0].stderr
    assert all(done.returncode != 2 for done in outputs), [d.stderr for d in outputs]
    if hostility.echo_key:  # the echoes reached aihd, redacted: the test did test something
        assert "api_error_<redacted>" in outputs[0].stdout
    _assert_nowhere(outputs, tmp_path)


def test_a_refused_wrong_key_echoed_back_is_nowhere(
    make_hostile: MakeHostile, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A 401 that quotes the wrong key: exit 3, and that key is in no output or file."""
    sandbox, _ = make_hostile(MODES["echo-key"])
    photo_factory(tmp_path / "inside", "room.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    log = tmp_path / "run.log"
    done = aihd(
        ["run", str(manifest), *FAST, "--json", "--log-file", str(log)], sandbox, key=CANARY
    )
    assert done.returncode == 3, done.stderr
    assert "<redacted>" in done.stderr
    _assert_nowhere([done], tmp_path)
