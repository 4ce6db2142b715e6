"""The operator's night: listings found by glob, quiet jobs, ignored files, rush listings."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.ledger import State
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows

PhotoFactory = Callable[..., Path]

GLOB_MANIFEST = (
    "version: 1\n"
    "output: ../enhanced\n"
    "rate_limit: {orders: 1000, per_seconds: 600}\n"
    "retry: {attempts: 3, max_backoff: 0.2}\n"
    "folders:\n"
    "  - path: listings/*/inside\n"
    '    enhancements: ["Add Fire to Fireplace"]\n'
    "  - path: listings/*/outside\n"
    "    space: outdoor\n"
)


def _listing(factory: PhotoFactory, root: Path, name: str) -> None:
    for n in range(2):
        factory(root / "listings" / name / "inside", f"in{n}.jpg")
    factory(root / "listings" / name / "outside", "front.jpg")


def _manifest(root: Path, text: str = GLOB_MANIFEST) -> Path:
    """The manifest, its ledger beside it (where these tests read it, and commands that do
    not talk to the API, like `aihd ignore`, find it without the emulator's address)."""
    (root / "studio").mkdir(exist_ok=True)
    path = root / "studio" / "listings.yaml"
    if "ledger:" not in text:
        text += "ledger: listings.ledger.sqlite\n"  # last: the lines the tests name stay put
    path.write_text(text)
    return path


def test_a_simulated_night_with_listings_added_archived_and_a_broken_file_ignored(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Night 1 finds the listings and the broken file (exit 1); the operator ignores it;
    between nights a listing arrives and one is archived; night 2 orders only the new
    listing's photos, exits 0, and says nothing on stderr under --quiet."""
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    _listing(photo_factory, studio, "7-elm")
    broken = studio / "listings" / "7-elm" / "inside" / "scan.jpg"
    broken.write_bytes(b"this is not a photo")
    manifest = _manifest(tmp_path)
    log = tmp_path / "night.log"
    night = ["run", str(manifest), *FAST, "--json", "--quiet", "--log-file", str(log)]

    first = aihd(night, sandbox)
    assert first.returncode == 1, first.stderr
    assert json.loads(first.stdout)["states"] == {"submitted": 6, "failed": 1}
    assert "scan.jpg" in first.stderr and "INFO" not in first.stderr

    ignored = aihd(["ignore", str(manifest), str(broken)], None)
    assert ignored.returncode == 0, ignored.stderr
    (studio / "listings" / "3-ash").mkdir()
    _listing(photo_factory, studio, "3-ash")
    archive = tmp_path / "archive"
    archive.mkdir()
    (studio / "listings" / "12-oak").rename(archive / "12-oak")

    charged_before = sum(sandbox.stats().charges.values())
    second = aihd(night, sandbox)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert sum(sandbox.stats().charges.values()) - charged_before == 3
    assert all(n == 1 for n in sandbox.stats().charges.values())
    summary = json.loads(second.stdout)
    assert summary["orders_spent"] == 3 and summary["failures"] == []
    assert "aihd run finished" in log.read_text()  # the trail is in the log, not on stderr
    folders = {r.folder for r in ledger_rows(manifest) if r.state is State.SUBMITTED}
    assert "listings/3-ash/inside" in folders and "listings/3-ash/outside" in folders

    plan = aihd(["plan", str(manifest)], sandbox)
    assert plan.returncode == 0, plan.stderr
    assert "listings/*/inside (line 6) matched: listings/3-ash/inside, listings/7-elm/inside" in (
        plan.stdout
    )
    assert "scan.jpg" not in plan.stdout
    status = aihd(["status", str(manifest)], None)
    assert "ignored (aihd ignore): 1 paths" in status.stdout


def test_a_failure_turns_exit_1_only_in_the_run_that_found_it(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A broken file left in place fails the night it is found; later nights exit 0."""
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    (studio / "listings" / "12-oak" / "inside" / "scan.jpg").write_bytes(b"not a photo")
    manifest = _manifest(tmp_path)
    first = aihd(["run", str(manifest), *FAST], sandbox)
    assert first.returncode == 1, first.stderr
    second = aihd(["run", str(manifest), *FAST, "--quiet"], sandbox)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""


def test_a_recursive_parent_with_an_override_pays_each_photo_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The override's photos are ordered once, with its options; the rest with the parent's."""
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    manifest = _manifest(
        tmp_path,
        "version: 1\noutput: ../enhanced\nfolders:\n"
        "  - path: listings\n    recursive: true\n    space: outdoor\n"
        "  - path: listings/12-oak/inside\n    space: indoor\n"
        '    enhancements: ["Add Fire to Fireplace"]\n',
    )
    done = aihd(["run", str(manifest), *FAST], sandbox)
    assert done.returncode == 0, done.stderr
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    assert len(ledger_rows(manifest)) == 3
    inside, front = rows["in0.jpg"], rows["front.jpg"]
    assert inside.folder == "listings/12-oak/inside" and inside.space.endswith("indoor")
    assert inside.enhancements == ("add fire to fireplace",)
    assert front.folder == "listings" and front.space.endswith("outdoor") and not front.enhancements


def test_folder_limits_run_collect_and_status_to_some_listings(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """--folder takes one listing: run orders only it, collect fetches only it into --output,
    status shows only it."""
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.01)
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    _listing(photo_factory, studio, "7-elm")
    manifest = _manifest(tmp_path)
    done = aihd(["run", str(manifest), *FAST, "--folder", "listings/7-elm/*"], sandbox)
    assert done.returncode == 0, done.stderr
    assert {r.folder for r in ledger_rows(manifest)} == {
        "listings/7-elm/inside",
        "listings/7-elm/outside",
    }
    everything = aihd(["run", str(manifest), *FAST], sandbox)
    assert everything.returncode == 0, everything.stderr

    rush = tmp_path / "rush"
    collect = aihd(
        [
            *("collect", str(manifest), "--wait", "--timeout", "60s", "--no-progress"),
            *("--folder", "listings/12-oak", "--output", str(rush)),
        ],
        sandbox,
    )
    assert collect.returncode == 0, collect.stderr
    written = sorted(p.relative_to(rush).as_posix() for p in rush.rglob("*.*"))
    assert written == [
        "listings/12-oak/inside/in0.jpg",
        "listings/12-oak/inside/in1.jpg",
        "listings/12-oak/outside/front.jpg",
    ]
    assert not (tmp_path / "enhanced").exists()

    status = aihd(["status", str(manifest), "--folder", "listings/12-oak/*"], None)
    assert status.returncode == 0, status.stderr
    assert "listings/12-oak/inside" in status.stdout and "7-elm" not in status.stdout

    none = aihd(["run", str(manifest), *FAST, "--folder", "listings/99-*"], sandbox)
    assert none.returncode == 2 and "matches none of the manifest's folders" in none.stderr


def test_collect_output_over_the_photos_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    """collect --output inside a photo folder (or a pattern's start) exits 2, nothing written."""
    (tmp_path / "studio" / "listings" / "a" / "inside").mkdir(parents=True)
    manifest = _manifest(tmp_path)
    (tmp_path / "studio" / "listings.ledger.sqlite").touch()
    done = aihd(
        ["collect", str(manifest), "--output", str(tmp_path / "studio" / "listings" / "out")],
        sandbox,
    )
    assert done.returncode == 2
    assert "lies inside the photo folder" in done.stderr and "line 6" in done.stderr
    assert "Traceback" not in done.stderr


def test_collect_never_writes_over_a_file_it_did_not_write(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A file already at a result's place that no photo claims keeps its bytes; the result
    takes another name."""
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.01)
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    manifest = _manifest(tmp_path)
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    theirs = tmp_path / "enhanced" / "listings" / "12-oak" / "inside" / "in0.jpg"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"the operator's own file")
    done = aihd(["collect", str(manifest), "--wait", "--timeout", "60s", "--no-progress"], sandbox)
    assert done.returncode == 0, done.stderr
    assert theirs.read_bytes() == b"the operator's own file"
    row = next(r for r in ledger_rows(manifest) if r.path.endswith("inside/in0.jpg"))
    assert row.state is State.COMPLETED and row.output_paths[0] != str(theirs)
    assert Path(row.output_paths[0]).parent == theirs.parent


def test_collect_without_wait_asks_once_even_before_the_eta(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Results ready before their eta are taken by a plain collect; nothing waits for them."""
    sandbox = make_sandbox(eta_seconds=3600, time_scale=0.0)
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    manifest = _manifest(tmp_path)
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 0
    done = aihd(["collect", str(manifest), "--json", "--no-progress"], sandbox)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["completed"], summary["waiting"], summary["polls"]) == (3, 0, 3)


def test_small_traps_are_refused_with_a_clear_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """--max-duration 6 needs a unit; collect --timeout needs --wait: exit 2, nothing spent."""
    (tmp_path / "studio" / "listings" / "a" / "inside").mkdir(parents=True)
    manifest = _manifest(tmp_path)
    run = aihd(["run", str(manifest), *FAST, "--max-duration", "6"], sandbox)
    assert run.returncode == 2 and "--max-duration 6: give a unit, e.g. 6h" in run.stderr
    collect = aihd(["collect", str(manifest), "--timeout", "2h"], sandbox)
    assert collect.returncode == 2 and "only applies with --wait" in collect.stderr
    assert sandbox.stats().uploads == 0


def test_a_vanished_folder_warns_and_the_night_goes_on_unless_strict(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """An archived listing named by path is a warning for it alone; --strict refuses (exit 2)."""
    studio = tmp_path / "studio"
    _listing(photo_factory, studio, "12-oak")
    manifest = _manifest(
        tmp_path,
        "version: 1\noutput: ../enhanced\nfolders:\n  - path: listings/12-oak/inside\n"
        "  - path: listings/9-gone/inside\n",
    )
    done = aihd(["run", str(manifest), *FAST, "--quiet"], sandbox)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and "listings.yaml:5:" in done.stderr
    assert "folder not found" in done.stderr and "skipped" in done.stderr
    strict = aihd(["run", str(manifest), *FAST, "--strict"], sandbox)
    assert strict.returncode == 2 and "listings.yaml:5:" in strict.stderr


def test_plan_and_status_share_order_words_and_alignment(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Folders in name order in both; a broken file is "failed" in both; long or non-ASCII
    names keep the columns aligned."""
    studio = tmp_path / "studio"
    for name in ("b-straße", "a-" + "x" * 40, "c-東京"):
        photo_factory(studio / "listings" / name / "inside", "p.jpg")
    (studio / "listings" / "b-straße" / "inside" / "bad.jpg").write_bytes(b"nope")
    manifest = _manifest(tmp_path)
    plan = aihd(["plan", str(manifest)], sandbox)
    assert plan.returncode == 0, plan.stderr
    table = [line for line in plan.stdout.splitlines() if line.startswith(("folder", "listings"))]
    assert [line.split()[0] for line in table[1:]] == sorted(line.split()[0] for line in table[1:])
    assert "failed" in table[0].split() and "broken" not in table[0].split()
    ends = {_cells(line) for line in table}
    assert len(ends) == 1, table
    assert aihd(["run", str(manifest), *FAST], sandbox).returncode == 1
    status = aihd(["status", str(manifest)], None)
    rows = [line for line in status.stdout.splitlines() if line.startswith(("folder", "listings"))]
    assert [r.split()[0] for r in rows[1:]] == [line.split()[0] for line in table[1:]]
    assert len({_cells(line) for line in rows}) == 1, rows


def _cells(line: str) -> int:
    from pipeline.columns import width

    return width(line)


def test_help_imports_no_http_database_or_schema_code() -> None:
    """`aihd --help` and `aihd run --help` load neither aiohttp, sqlite3 nor pydantic."""
    probe = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "for args in (['--help'], ['run', '--help'], ['collect', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'aiohttp', 'sqlite3', 'pydantic', 'yarl', 'PIL', 'tqdm',"
        " 'pipeline.ordering.runner'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_symlink_loop_or_a_5000_character_path_exits_2_in_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Each is one line on stderr naming file:line, exit 2, no traceback, nothing spent."""
    (tmp_path / "studio" / "a").mkdir(parents=True)
    (tmp_path / "studio" / "loop").symlink_to(tmp_path / "studio" / "loop")
    long_path = "/".join(["abcdefghij"] * 455)
    for folder, phrase in (("loop", "loop of symbolic links"), (long_path, "too long")):
        manifest = _manifest(tmp_path, f"version: 1\nfolders:\n  - path: a\n  - path: {folder}\n")
        done = aihd(["run", str(manifest), *FAST], sandbox)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "listings.yaml:4: " in done.stderr
        assert phrase in done.stderr and "Traceback" not in done.stderr
    assert sandbox.stats().uploads == 0


def test_a_ledger_of_the_previous_schema_gains_ignored_paths_and_titles(tmp_path: Path) -> None:
    """An existing (version 1) ledger is migrated in place; ignoring a path twice counts once,
    and catalog spellings are kept beside the casefolded identities."""
    import sqlite3

    from pipeline.ledger import migrations as _migrations
    from pipeline.ledger import open_ledger

    path = tmp_path / "old.ledger.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {_migrations.APPLICATION_ID}")
    _migrations.MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    ledger = open_ledger(path)
    try:
        assert ledger.ignore_paths(["/p/a.jpg", "/p/b.jpg"], "broken") == 2
        assert ledger.ignore_paths(["/p/a.jpg"], "again") == 0
        assert ledger.ignored_paths() == {"/p/a.jpg", "/p/b.jpg"}
        ledger.remember_titles(["Add Fire to Fireplace", "ADD SCREEN TO TV"])
        ledger.remember_titles(["Add Screen to TV"])
        assert ledger.titles() == {
            "add fire to fireplace": "Add Fire to Fireplace",
            "add screen to tv": "Add Screen to TV",
        }
    finally:
        ledger.close()
