"""A photo's identity and the ledger file (issues 20.3, 20.5, 20.10, 20.11 and 21.8).

Identity comes from what the user chose, not from one server spelling: a catalog entry renamed
in one of its spellings, a photo ignored then renamed or copied, a manifest switched from v1 to
v3, each orders nothing again. A file at the ledger's path that is not a ledger is refused, and
two accounts sharing one ledger file each keep their own order window. Each test drives the real
`aihd` against the local emulator and asserts its charges, the ledger's rows and exit codes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import State
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]
FIRE = "Add Fire to Fireplace"


def _listing(photo_factory: PhotoFactory, root: Path, inside: int = 3, outside: int = 2) -> None:
    for n in range(inside):
        photo_factory(root / "inside", f"in{n}.jpg")
    for n in range(outside):
        photo_factory(root / "outside", f"out{n}.jpg")


def _run(manifest: Path, sandbox: Sandbox, *extra: str) -> dict[str, object]:
    done = aihd(["run", str(manifest), *FAST, "--json", *extra], sandbox)
    summary: dict[str, object] = json.loads(done.stdout) if done.stdout.strip() else {}
    summary["_exit"], summary["_stderr"] = done.returncode, done.stderr
    return summary


def _plan(manifest: Path, sandbox: Sandbox) -> dict[str, object]:
    done = aihd(["plan", str(manifest), "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    plan: dict[str, object] = json.loads(done.stdout)
    return plan


def _charges(sandbox: Sandbox) -> int:
    return sum(sandbox.stats().charges.values())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 20.3: a catalog entry renamed in one spelling is the same choice --------------------------


RENAMES = [
    # (kind, which, spelling, new, the manifest's space and toggle after it)
    ("space", "Indoor", "id", "space-id-renamed", ("indoor", FIRE)),
    ("space", "Indoor", "name", "space-ie-inside", ("indoor", FIRE)),
    ("space", "space-ie-inside", "title", "Inside", ("inside", FIRE)),
    ("widget", "Enhancement Options", "id", "widget-id-renamed", ("inside", FIRE)),
    ("widget", "Enhancement Options", "title", "Optional touches", ("inside", FIRE)),
    ("item", FIRE, "id", "item-id-renamed", ("inside", FIRE)),
    ("item", FIRE, "title", "Fire in the Fireplace", ("inside", "Fire in the Fireplace")),
]


def test_a_catalog_entry_renamed_in_one_spelling_orders_nothing_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Each spelling of the space, its widget and a toggle renamed in turn between nights
    (the manifest following a renamed title, as its error asks): each night's plan says
    nothing to order, and the run charges nothing."""
    _listing(photo_factory, tmp_path)
    folders = {"inside": ("indoor", [FIRE]), "outside": ("outdoor", [])}
    manifest = write_manifest(tmp_path, folders)
    first = _run(manifest, sandbox)
    assert (first["_exit"], first["orders_spent"]) == (0, 5), first["_stderr"]
    identities = {r.path: r.identity for r in ledger_rows(manifest)}
    for kind, which, spelling, new, (space, toggle) in RENAMES:
        sandbox.rename_catalog_entry(kind, which, spelling, new)  # type: ignore[arg-type]
        folders["inside"] = (space, [toggle])
        write_manifest(tmp_path, folders)
        what = f"after the {kind}'s {spelling} was renamed"
        plan = _plan(manifest, sandbox)
        assert plan["orders"] == 0, (what, plan)
        night = _run(manifest, sandbox)
        assert (night["_exit"], night["orders_spent"]) == (0, 0), (what, night["_stderr"])
        assert _charges(sandbox) == 5, what
        assert {r.path: r.identity for r in ledger_rows(manifest)} == identities, what
    assert sorted(sandbox.stats().charges.values()) == [1] * 5


def test_a_new_catalog_entry_with_a_renamed_ones_old_spelling_is_a_new_choice(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A slug renamed away, then the old slug on another space: its photos are new orders,
    never taken for the first space's paid ones."""
    _listing(photo_factory, tmp_path, inside=2, outside=0)
    manifest = write_manifest(tmp_path, {"inside": ("space-ie-indoor", [])})
    assert _run(manifest, sandbox)["orders_spent"] == 2
    sandbox.rename_catalog_entry("space", "space-ie-indoor", "name", "space-ie-interior")
    # The outdoor space takes the old slug (and nothing else of the first space).
    sandbox.rename_catalog_entry("space", "space-ie-outdoor", "name", "space-ie-indoor")
    moved = _run(manifest, sandbox)  # space-ie-indoor is now the other space: a new choice
    assert (moved["_exit"], moved["orders_spent"]) == (0, 2), moved["_stderr"]
    assert sorted(sandbox.stats().charges.values()) == [2, 2]
    keys = {r.space for r in ledger_rows(manifest)}
    assert len(keys) == 1 and keys != {"space-ie-indoor"}  # its own key, not the first's


# -- 20.11: ignore by content, before the first run too ----------------------------------------


def test_an_ignored_photo_renamed_or_copied_stays_ignored_and_ignore_works_before_a_run(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """`aihd ignore` before any ledger exists creates it; the ignored photo, renamed and
    copied into another folder, is never ordered; a file that cannot be read is ignored by
    its path."""
    _listing(photo_factory, tmp_path, inside=3, outside=1)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", []), "outside": ("outdoor", [])})
    ledger_file = manifest.with_name("photos.ledger.sqlite")
    unwanted = tmp_path / "inside" / "in1.jpg"
    broken = tmp_path / "outside" / "scan.jpg"
    broken.write_bytes(b"not a photo at all")
    assert not ledger_file.exists()

    done = aihd(["ignore", str(manifest), str(unwanted), str(broken)], None)
    assert done.returncode == 0, done.stderr
    assert "2 newly ignored (1 by path" in done.stderr
    assert ledger_file.is_file()

    renamed = unwanted.with_name("in1-final.jpg")
    unwanted.rename(renamed)
    shutil.copy2(renamed, tmp_path / "outside" / "copy-of-in1.jpg")
    assert _plan(manifest, sandbox)["orders"] == 3
    night = _run(manifest, sandbox)
    assert (night["_exit"], night["orders_spent"]) == (0, 3), night["_stderr"]
    ignored_sha = _digest(renamed)
    assert ignored_sha not in sandbox.stats().charges
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    paths = {Path(r.path).name for r in ledger_rows(manifest)}
    assert paths == {"in0.jpg", "in2.jpg", "out0.jpg"}
    status = aihd(["status", str(manifest)], None)
    assert "ignored (aihd ignore): 2 paths" in status.stdout


# -- 20.5: a ledger that is not a ledger is refused ---------------------------------------------


def test_a_ledger_emptied_to_0_bytes_is_refused_and_nothing_is_charged(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The ledger of a paid night emptied (a failed copy): exit 2, one line naming the file
    and the two ways on, no upload, no charge; `aihd ledger init --into` then makes it one."""
    _listing(photo_factory, tmp_path, inside=3, outside=0)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert _run(manifest, sandbox)["orders_spent"] == 3
    ledger_file = manifest.with_name("photos.ledger.sqlite")
    ledger_file.write_bytes(b"")
    uploads = sandbox.stats().uploads

    for command in (["run", str(manifest), *FAST], ["plan", str(manifest)]):
        done = aihd(command, sandbox)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"ledger {ledger_file} is an empty file, not a ledger" in done.stderr
        assert f"aihd ledger init --into {ledger_file}" in done.stderr
    assert (sandbox.stats().uploads, _charges(sandbox)) == (uploads, 3)
    assert ledger_file.stat().st_size == 0

    hint = aihd(["ledger", "init", "--into", str(ledger_file)], None)  # the hint, pasted
    assert hint.returncode == 0, hint.stderr
    assert f"created the ledger {ledger_file}" in hint.stdout
    assert aihd(["status", str(manifest)], None).returncode == 0


@pytest.mark.parametrize("kind", ["text", "foreign sqlite"])
def test_a_file_of_another_kind_at_the_ledgers_path_is_refused_and_left_alone(
    kind: str, sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A text file, or another tool's SQLite database, where the ledger should be: exit 2,
    nothing uploaded or charged, the file byte for byte as it was, even by `ledger init`."""
    _listing(photo_factory, tmp_path, inside=2, outside=0)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    ledger_file = manifest.with_name("photos.ledger.sqlite")
    if kind == "text":
        ledger_file.write_text("my notes about the listings\n" * 20)
    else:
        conn = sqlite3.connect(ledger_file)
        conn.execute("CREATE TABLE contacts (name TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('Ada')")
        conn.commit()
        conn.close()
    before = _digest(ledger_file)
    for command in (["run", str(manifest), *FAST], ["ledger", "init", str(manifest)]):
        done = aihd(command, sandbox)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert str(ledger_file) in done.stderr and "not an aihd ledger" in done.stderr
    assert (sandbox.stats().uploads, _charges(sandbox)) == (0, 0)
    assert _digest(ledger_file) == before


def test_ledger_init_creates_a_ledger_where_none_is_and_keeps_one_that_is(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state" / "studio.ledger.sqlite"
    made = aihd(["ledger", "init", "--into", str(target)], None)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"aihd ledger init: created the ledger {target}"
    again = aihd(["ledger", "init", "--into", str(target)], None)
    assert again.returncode == 0, again.stderr
    assert "is an aihd ledger (0 photos): nothing to do" in again.stdout
    assert not [p.name for p in target.parent.iterdir() if p.name.endswith(".new")]


# -- 20.10: two accounts sharing one ledger file, one window each -------------------------------


@pytest.mark.slow
def test_two_accounts_with_their_own_servers_and_one_ledger_file_each_keep_their_window(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Two accounts (two servers), one `ledger:` file, each a full window's worth of photos
    at once: each run takes its own window at once, rather than waiting a whole window for the
    other's (--max-duration stops a run that waits); no 429, each photo charged once."""
    window = {"orders_per_window": 4, "window_seconds": 60.0}
    servers = [make_sandbox(**window), make_sandbox(**window)]
    shared = tmp_path / "shared.ledger.sqlite"
    manifests = []
    for name in ("north", "south"):
        root = tmp_path / name
        for n in range(4):
            photo_factory(root / "inside", f"{name}{n}.jpg")
        manifests.append(
            write_manifest(
                root, {"inside": ("indoor", [])}, orders=4, per_seconds=60, ledger=str(shared)
            )
        )
    runs = [
        spawn_aihd(["run", str(m), *FAST, "--json", "--max-duration", "40s"], server)
        for m, server in zip(manifests, servers, strict=True)
    ]
    outs = [run.communicate(timeout=180) for run in runs]
    summaries = [json.loads(out) for out, _ in outs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outs]
    assert [s["orders_spent"] for s in summaries] == [4, 4]
    for server in servers:
        stats = server.stats()
        assert stats.rate_limited == 0
        assert sorted(stats.charges.values()) == [1] * 4
    conn = sqlite3.connect(shared)
    accounts = dict(conn.execute("SELECT account, count(*) FROM order_posts GROUP BY account"))
    conn.close()
    assert sorted(accounts.values()) == [4, 4] and len(accounts) == 2
    assert all(account.startswith("default@127.0.0.1_") for account in accounts)
    print("seconds per run:", [s["seconds"] for s in summaries])


# -- 21.8: one identity across API versions for image enhancement ------------------------------


def test_a_photo_paid_through_v1_is_not_ordered_again_through_v3(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The same manifest switched to `api: v3`: the plan says "paid through v1", the run
    charges nothing; only `aihd reorder` pays again, once, through v3."""
    _listing(photo_factory, tmp_path)
    folders = {"inside": ("indoor", [FIRE]), "outside": ("outdoor", [])}
    manifest = write_manifest(tmp_path, folders)
    assert _run(manifest, sandbox)["orders_spent"] == 5
    write_manifest(tmp_path, folders, api="v3")

    plan = aihd(["plan", str(manifest)], sandbox)
    assert plan.returncode == 0, plan.stderr
    assert "0 orders" in plan.stdout
    assert "5 photos paid through v1 (the same photo and choice" in plan.stdout
    night = _run(manifest, sandbox)
    assert (night["_exit"], night["orders_spent"]) == (0, 0), night["_stderr"]
    stats = sandbox.stats()
    assert (stats.process_posts, stats.v3_orders, _charges(sandbox)) == (0, 0, 5)
    rows = ledger_rows(manifest)
    assert {r.state for r in rows} == {State.DUPLICATE}
    assert {r.service for r in rows} == {"v3:tool-image-enhancement"}
    assert _run(manifest, sandbox)["orders_spent"] == 0

    again = tmp_path / "inside" / "in0.jpg"
    reorder = aihd(["reorder", str(manifest), str(again), "--yes"], None)
    assert reorder.returncode == 0, reorder.stderr
    paid = _run(manifest, sandbox)
    assert (paid["_exit"], paid["orders_spent"]) == (0, 1), paid["_stderr"]
    assert sandbox.stats().charges[_digest(again)] == 2
    assert sandbox.stats().processes_charged == 1


def test_a_photo_paid_through_v3_is_not_ordered_again_through_v1(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The other way round: a v3 night, then the manifest back on v1, charges nothing."""
    _listing(photo_factory, tmp_path, inside=2, outside=1)
    folders = {"inside": ("indoor", [FIRE, "Add Screen to TV"]), "outside": ("outdoor", [])}
    manifest = write_manifest(tmp_path, folders, api="v3")
    assert _run(manifest, sandbox)["orders_spent"] == 3
    write_manifest(tmp_path, folders)
    night = _run(manifest, sandbox)
    assert (night["_exit"], night["orders_spent"]) == (0, 0), night["_stderr"]
    assert (sandbox.stats().order_posts, _charges(sandbox)) == (0, 3)


def test_a_v1_toggle_without_a_v3_counterpart_holds_the_photo_with_the_reason(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Paid through v1 with "Remove Extra Objects" (no v3 counterpart): under v3 the photo is
    held, not paid, shown with the reason by plan, the run and status; later nights and
    --retry-failed leave it held; the other photos, a v3 choice of their own, are ordered."""
    _listing(photo_factory, tmp_path, inside=1, outside=2)
    v1 = {"inside": ("indoor", []), "outside": ("outdoor", ["Remove Extra Objects"])}
    manifest = write_manifest(tmp_path, v1)
    assert _run(manifest, sandbox)["orders_spent"] == 3
    write_manifest(tmp_path, {"inside": ("indoor", [FIRE]), "outside": ("outdoor", [])}, api="v3")

    plan = aihd(["plan", str(manifest)], sandbox)
    assert plan.returncode == 0, plan.stderr
    assert "1 orders" in plan.stdout  # the inside photo: fire is a new choice
    held_line = "paid through v1 with 'Remove Extra Objects', which v3 image enhancement has no"
    assert plan.stdout.count(held_line) == 2
    night = _run(manifest, sandbox)
    assert (night["_exit"], night["orders_spent"]) == (1, 1), night["_stderr"]
    failures = night["failures"]
    assert isinstance(failures, list) and len(failures) == 2
    assert all(held_line in f["error"] and "aihd reorder" in f["error"] for f in failures)
    assert _charges(sandbox) == 4 and sandbox.stats().processes_charged == 1
    status = aihd(["status", str(manifest), "--failed"], None)
    assert status.stdout.count(held_line) == 2

    for extra in ((), ("--retry-failed",)):
        later = _run(manifest, sandbox, *extra)
        assert (later["_exit"], later["orders_spent"]) == (0, 0), later["_stderr"]
    assert _charges(sandbox) == 4
    held = [r for r in ledger_rows(manifest) if r.state is State.FAILED]
    assert len(held) == 2 and all(r.duplicate_of is not None for r in held)
