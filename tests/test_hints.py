"""Every hint aihd prints is a command that works when pasted: the review page's, status's,
plan's, collect's, deliver's and the errors'. Each is pasted into a shell as printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import aihd, aihd_env, ledger_rows
from tests.review_helpers import INSIDE, OUTSIDE, PhotoFactory, collected_listing, row_named

_BACKTICKED = re.compile(r"`(aihd [^`]+)`")


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


@pytest.fixture
def shell(tmp_path: Path) -> Callable[[str, Sandbox | None], subprocess.CompletedProcess[str]]:
    """Paste a command into bash, with `aihd` on the PATH and a HOME of the test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "aihd"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m pipeline "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()

    def paste(command: str, sandbox: Sandbox | None) -> subprocess.CompletedProcess[str]:
        env = aihd_env(sandbox, extra={"HOME": str(home)})
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        done = subprocess.run(
            ["bash", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        # A usage error is click's: "Usage: ...", "Try 'aihd ... --help'", "Error: ...".
        assert "Try 'aihd" not in done.stderr and "Usage:" not in done.stderr, (command, done)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        return done

    return paste


Paste = Callable[[str, Sandbox | None], subprocess.CompletedProcess[str]]


def _hints(text: str) -> list[str]:
    return _BACKTICKED.findall(text)


def _page(index: Path) -> dict[str, object]:
    text = (index.parent / "data.js").read_text()
    found = re.fullmatch(r"window\.AIHD_REVIEW = (.*);\n", text, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
def test_the_review_pages_and_decisions_hints_work_when_pasted(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, shell: Paste
) -> None:
    """Reorder (per photo, with the manifest), collect, and apply: each works as printed."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    done = aihd(["review", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    index = tmp_path / "review" / "index.html"
    data = _page(index)
    photos = data["photos"]
    assert isinstance(photos, list)

    den = next(p for p in photos if p["name"] == "den.jpg")
    assert den["reorder_command"] == f"aihd reorder {manifest} {den['path']} --yes"
    pasted = shell(den["reorder_command"], None)
    assert pasted.returncode == 0, pasted.stderr
    assert row_named(manifest, "den.jpg").state is State.PENDING  # ordered again next run

    pasted = shell(str(data["collect_command"]), sandbox)
    assert pasted.returncode == 0, pasted.stderr

    (apply,) = re.findall(r"<code>(aihd review [^<]+)</code>", index.read_text())
    downloads = tmp_path / "home" / "Downloads"
    downloads.mkdir()
    front = row_named(manifest, "front.jpg")
    entry = {"photo_id": front.id, "path": front.path, "sha256": front.sha256}
    (downloads / "aihd-decisions.json").write_text(
        json.dumps(
            {
                "format": "aihd-review-decisions",
                "version": 1,
                "decisions": [{**entry, "decision": "approved"}],
            }
        )
    )
    pasted = shell(apply.replace("&#x27;", "'"), None)
    assert pasted.returncode == 0, pasted.stderr
    assert "recorded 1 approved" in pasted.stdout

    kitchen = tmp_path / INSIDE / "kitchen.jpg"
    done = aihd(["reject", str(manifest), str(kitchen)], None)
    (hint,) = _hints(done.stderr)
    assert shell(hint, None).returncode == 0
    assert row_named(manifest, "kitchen.jpg").state is State.PENDING


def test_approve_takes_repeated_and_glob_folders(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """--folder A --folder B decides both; a glob as run takes it; a glob matching none: 2."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    done = aihd(["approve", str(manifest), "--folder", INSIDE, "--folder", OUTSIDE], None)
    assert done.returncode == 0, done.stderr
    assert "5 photos approved" in done.stdout
    done = aihd(["reject", str(manifest), "--folder", "listings/12-oak-st/*"], None)
    assert done.returncode == 0, done.stderr
    assert "5 photos rejected" in done.stdout
    done = aihd(["approve", str(manifest), "--folder", "listings/9-pine-rd/*"], None)
    assert done.returncode == 2
    assert "--folder listings/9-pine-rd/*: matches none of the folders" in done.stderr


@pytest.mark.slow
def test_status_plan_collect_deliver_and_error_hints_work_when_pasted(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    shell: Paste,
) -> None:
    """Each hint of a night's commands, pasted in turn, does what it says."""
    # Results held until the test lets them go: "not ready yet" is certain, not a race with
    # the eta (collect --wait waits an order's eta out: 1 s here, not 10).
    sandbox = make_sandbox()
    sandbox.hold_results(True)
    for name in ("kitchen", "den"):
        photo_factory(tmp_path / INSIDE, f"{name}.jpg", size=(160, 120))
    photo_factory(tmp_path / OUTSIDE, "front.jpg", size=(160, 120))
    broken = tmp_path / INSIDE / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    manifest = tmp_path / "listing.yaml"
    manifest.write_text(
        "version: 1\nledger: listing.ledger.sqlite\n"
        "rate_limit: {orders: 1000, per_seconds: 600}\nretry: {attempts: 3, max_backoff: 0.2}\n"
        f"folders:\n  - path: {INSIDE}\n  - path: {OUTSIDE}\n    space: outdoor\n"
    )
    seen: set[str] = set()

    def paste_each(text: str, expected: frozenset[int] = frozenset({0})) -> None:
        hints = list(dict.fromkeys(_hints(text)))
        assert hints, text
        for hint in hints:
            seen.add(" ".join(hint.split()[:2]))
            pasted = shell(hint, sandbox)
            assert pasted.returncode in expected, (hint, pasted.stderr)

    # No ledger yet: the error names the run that creates it (the broken photo fails: 1).
    done = aihd(["status", str(manifest)], sandbox)
    assert done.returncode == 2
    paste_each(done.stderr, frozenset({1}))
    # Results not ready yet: collect says how to wait for them; approving one says collect.
    done = aihd(["collect", str(manifest), "--no-progress"], sandbox)
    assert done.returncode == 0 and "results not ready yet" in done.stdout
    refused = aihd(["approve", str(manifest), str(tmp_path / INSIDE / "den.jpg")], None)
    assert refused.returncode == 2
    sandbox.hold_results(False)
    paste_each(done.stdout + refused.stderr)
    assert {r.state for r in ledger_rows(manifest) if r.sha256} == {State.COMPLETED}
    # A failed photo: status points at --failed.
    paste_each(aihd(["status", str(manifest)], None).stdout)
    assert aihd(["ignore", str(manifest), str(broken)], None).returncode == 0

    # A charged photo whose result failed: plan, status and status --failed name collect and
    # reorder (pasted in turn: collect places it, reorder clears its charge).
    ledger = open_ledger(manifest.with_name("listing.ledger.sqlite"))
    try:
        kitchen = next(r for r in ledger.photos() if r.path.endswith("kitchen.jpg"))
        ledger.mark_failed(kitchen.id, "result did not decode", retryable=False)
    finally:
        ledger.close()
    planned = aihd(["plan", str(manifest)], sandbox)
    assert planned.returncode == 0, planned.stderr
    failed = aihd(["status", str(manifest), "--failed"], None).stdout
    status = aihd(["status", str(manifest)], None).stdout
    paste_each(planned.stdout + failed + status, frozenset({0, 1}))
    assert row_named(manifest, "kitchen.jpg").state is State.PENDING
    # Reorder of a photo not ordered yet names the run that orders it.
    done = aihd(["reorder", str(manifest), kitchen.path], None)
    assert done.returncode == 1 and "not ordered yet" in done.stdout
    paste_each(done.stdout)
    assert aihd(["collect", str(manifest), "--wait", "--no-progress"], sandbox).returncode == 0

    # Deliver: a listing left out says how to decide, or to deliver anyway; a refused folder
    # says where to deliver instead.
    done = aihd(["deliver", str(manifest)], None)
    assert "not decided yet" in done.stderr
    paste_each(done.stderr)
    done = aihd(["deliver", str(manifest), "-o", str(tmp_path / "listings")], None)
    assert done.returncode == 2
    paste_each(done.stderr)
    assert seen >= {
        "aihd run",
        "aihd collect",
        "aihd status",
        "aihd reorder",
        "aihd review",
        "aihd deliver",
    }


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "plan", "collect", "catalog"])
def test_the_missing_key_error_names_an_option_the_command_has(
    command: str, tmp_path: Path, shell: Paste
) -> None:
    """ "or use --sandbox": every command that needs a key takes --sandbox."""
    (tmp_path / "inside").mkdir()
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nledger: m.ledger.sqlite\nfolders:\n  - path: inside\n")
    args = [command] if command == "catalog" else [command, str(manifest)]
    done = aihd(args, None)
    assert done.returncode == 2 and "or use --sandbox" in done.stderr
    pasted = shell(" ".join(["aihd", *args, "--sandbox"]), None)
    assert pasted.returncode in (0, 2), pasted.stderr  # collect: no sandbox ledger yet (2)
    if pasted.returncode == 2:
        (hint,) = _hints(pasted.stderr)
        assert hint == f"aihd run {manifest} --sandbox"
