"""The account's ledger: shared by every manifest, run and key of an account (issue 12).

Each test gives aihd a state folder of its own (XDG_STATE_HOME) and lets it pick the default
ledger there, as it does on a user's machine.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ledger import FoundPhoto, PhotoOptions, open_ledger
from pipeline.manifest.accounts import account_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, spawn_aihd, write_manifest

PhotoFactory = Callable[..., Path]
INDOOR = PhotoOptions("service-image-enhancement", "space-ie-indoor", ())


def _env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_STATE_HOME": str(tmp_path / "state")}


def _run(manifest: Path, sandbox: Sandbox, tmp_path: Path, *extra: str) -> dict[str, object]:
    done = aihd(["run", str(manifest), *FAST, "--json", *extra], sandbox, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


def _ledger_of(sandbox: Sandbox, tmp_path: Path, account: str = "default") -> Path:
    return account_ledger(sandbox.url, account, env=_env(tmp_path))


def test_a_renamed_copy_of_a_manifest_orders_nothing_again(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The ledger is the account's, not the manifest file's."""
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, ledger=None)
    assert _run(manifest, sandbox, tmp_path)["orders_spent"] == 3
    copy = shutil.copy(manifest, tmp_path / "nightly-copy.yaml")
    assert _run(Path(copy), sandbox, tmp_path)["orders_spent"] == 0
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    assert _ledger_of(sandbox, tmp_path).is_file()
    assert not manifest.with_name("photos.ledger.sqlite").exists()


def test_two_manifests_listing_one_folder_pay_each_photo_once(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A photo is one identity in the account, whichever manifest finds it."""
    for n in range(4):
        photo_factory(tmp_path / "shared", f"p{n}.jpg")
    first = write_manifest(tmp_path, {"shared": ("indoor", [])}, ledger=None, name="a.yaml")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "shared").symlink_to(tmp_path / "shared")
    second = write_manifest(tmp_path / "b", {"shared": ("indoor", [])}, ledger=None)
    assert _run(first, sandbox, tmp_path)["orders_spent"] == 4
    assert _run(second, sandbox, tmp_path)["orders_spent"] == 0
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1, 1]
    status = aihd(["status", str(second), "--json"], sandbox, env=_env(tmp_path))
    assert json.loads(status.stdout)["orders_spent"] == 4


def test_the_emulator_and_the_real_api_keep_ledgers_of_their_own(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """`run --sandbox` first, then the real API (another emulator stands for it): all paid."""
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, ledger=None)
    demo = aihd(["run", str(manifest), *FAST, "--sandbox"], None, env=_env(tmp_path))
    assert demo.returncode == 0, demo.stderr
    assert _run(manifest, sandbox, tmp_path)["orders_spent"] == 3
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    state = tmp_path / "state" / "aihd"
    assert (state / "default@sandbox.ledger.sqlite").is_file()
    assert _ledger_of(sandbox, tmp_path).is_file()


def test_a_rotated_key_pays_nothing_again_and_only_its_fingerprint_is_kept(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The account is the endpoint, not the key; the ledger keeps a fingerprint, never a key."""
    for n in range(2):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])}, ledger=None)
    assert _run(manifest, sandbox, tmp_path)["orders_spent"] == 2
    new_key = "rotated-" + "k" * 24
    sandbox.rotate_key(new_key)
    photo_factory(tmp_path / "inside", "p9.jpg")
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, key=new_key, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders_spent"] == 1
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    ledger = _ledger_of(sandbox, tmp_path)
    conn = sqlite3.connect(ledger)
    try:
        prints = {row[0] for row in conn.execute("SELECT key_fingerprint FROM order_posts")}
    finally:
        conn.close()
    assert len(prints) == 2 and "" not in prints
    for file in ledger.parent.iterdir():
        data = file.read_bytes()
        assert sandbox.api_key.encode() not in data and new_key.encode() not in data


def test_each_named_account_has_its_own_ledger(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A studio working for two accounts: each account pays for its own orders."""
    photo_factory(tmp_path / "inside", "p0.jpg")
    oak = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, ledger=None, account="oak-realty", name="oak.yaml"
    )
    elm = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, ledger=None, account="elm-homes", name="elm.yaml"
    )
    assert _run(oak, sandbox, tmp_path)["orders_spent"] == 1
    assert _run(elm, sandbox, tmp_path)["orders_spent"] == 1
    assert _ledger_of(sandbox, tmp_path, "oak-realty") != _ledger_of(sandbox, tmp_path, "elm-homes")
    assert _run(oak, sandbox, tmp_path)["orders_spent"] == 0


def test_an_older_per_manifest_ledger_is_imported_on_first_use(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The ledger an older aihd kept beside the manifest is taken in: nothing is paid again."""
    for n in range(3):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})  # ledger beside it
    assert _run(manifest, sandbox, tmp_path)["orders_spent"] == 3
    write_manifest(tmp_path, {"inside": ("indoor", [])}, ledger=None)  # as it is written now
    done = aihd(["run", str(manifest), *FAST, "--json"], sandbox, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders_spent"] == 0
    assert "imported 3 photos" in done.stderr
    assert sorted(sandbox.stats().charges.values()) == [1, 1, 1]
    again = aihd(["run", str(manifest), *FAST], sandbox, env=_env(tmp_path))
    assert "imported" not in again.stderr  # once


def test_import_keeps_every_state_and_a_charge_wins(tmp_path: Path) -> None:
    """A ledger with a photo in each state comes across whole; a charged copy is never lost."""
    old = open_ledger(tmp_path / "old.ledger.sqlite")
    found = [
        FoundPhoto(f"/p/{name}.jpg", "listing", 10, 1, sha * 64, INDOOR)
        for name, sha in [("pend", "a"), ("up", "b"), ("subm", "c"), ("done", "d"), ("fail", "e")]
    ]
    found.append(FoundPhoto("/p/copy.jpg", "listing", 10, 1, "c" * 64, INDOOR))
    rows = {r.path: r for r in old.record_found(found)}
    old.mark_uploaded(rows["/p/up.jpg"].id, "order-up")
    for name, order in [("subm", "order-s"), ("done", "order-d"), ("fail", "order-f")]:
        photo = rows[f"/p/{name}.jpg"]
        old.mark_submitting(photo.id, order)
        old.mark_submitted(photo.id, f"image-{name}", 30, answered=True)
    old.mark_completed(rows["/p/done.jpg"].id, ["http://x/r.jpg"], ["/out/done.jpg"])
    old.mark_failed(rows["/p/fail.jpg"].id, "result does not decode", retryable=False)
    old.record_broken("/p/broken.jpg", "listing", 3, 1, "empty file")
    old.start_run("aihd run old.yaml")
    before = {r.path: r for r in old.photos(current_only=False)}
    old.close()

    account = open_ledger(tmp_path / "account.ledger.sqlite")
    try:
        # The account's ledger knows one of these photos already, uncharged.
        account.record_found([FoundPhoto("/p/done.jpg", "listing", 10, 1, "d" * 64, INDOOR)])
        assert account.import_ledger(tmp_path / "old.ledger.sqlite") == 6
        assert account.import_ledger(tmp_path / "old.ledger.sqlite") is None
        after = {r.path: r for r in account.photos(current_only=False)}
        last = account.last_run()
    finally:
        account.close()
    assert set(after) == set(before)
    for path, row in before.items():
        fields = ("state", "order_id", "image_id", "charged", "output_paths", "error")
        assert [getattr(after[path], f) for f in fields] == [getattr(row, f) for f in fields]
    assert after["/p/copy.jpg"].duplicate_of == after["/p/subm.jpg"].id
    assert last is not None and last.command == "aihd run old.yaml"


@pytest.mark.slow
def test_three_runs_of_three_manifests_share_the_window_and_pay_each_photo_once(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Together they would send three times the account's pace: the ledger's window holds."""
    sandbox = make_sandbox(orders_per_window=5, window_seconds=2.0)
    shared = tmp_path / "shared"
    for n in range(9):
        photo_factory(shared, f"s{n}.jpg")
    manifests = []
    for name in ("a", "b", "c"):
        root = tmp_path / name
        for n in range(2):
            photo_factory(root / "own", f"{name}{n}.jpg")
        (root / "shared").symlink_to(shared)
        manifests.append(
            write_manifest(
                root,
                {"own": ("indoor", []), "shared": ("indoor", [])},
                ledger=None,
                orders=5,
                per_seconds=2.0,
                concurrency=3,
            )
        )
    runs = [
        spawn_aihd(["run", str(m), *FAST, "--json"], sandbox, env=_env(tmp_path)) for m in manifests
    ]
    started = time.monotonic()
    outs = [run.communicate(timeout=180) for run in runs]
    took = time.monotonic() - started
    assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outs]
    stats = sandbox.stats()
    assert stats.rate_limited == 0
    assert sorted(stats.charges.values()) == [1] * 15
    assert sum(json.loads(out)["orders_spent"] for out, _ in outs) == 15
    # 15 orders at 5 per 2 s need at least two full windows after the first five.
    assert took >= 4.0
