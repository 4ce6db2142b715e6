"""``aihd deliver`` owns only what it writes: it never writes into or over a photo folder,
never deletes a file it did not write, and delivers a listing whole or not at all."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows
from tests.review_helpers import INSIDE, OUTSIDE, PhotoFactory, collected_listing

PHOTOS = ["01-front.jpg", "02-yard.jpg", "03-bath.jpg", "04-den.jpg", "05-kitchen.jpg"]


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


def _hashes(*roots: Path) -> dict[str, str]:
    """Every file under these folders (hidden ones too), by path: its sha256."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _approve_all(manifest: Path) -> None:
    for folder in (INSIDE, OUTSIDE):
        done = aihd(["approve", str(manifest), "--folder", folder], None)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "output",
    [
        "listings",  # the root of the photo folders (the operator's command)
        INSIDE,  # a photo folder itself
        "listings/12-oak-st",  # a listing's folder, parent of two photo folders
        f"{OUTSIDE}/delivery",  # inside a photo folder
        ".",  # the manifest's folder, parent of everything
        "enhanced",  # the results deliver reads
    ],
)
def test_a_delivery_into_or_over_photo_folders_is_refused_and_nothing_changes(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, output: str
) -> None:
    """Exit 2 naming the folder and the fix; every original and result keeps its bytes, and
    no file appears (approved photos, never-approved ones alike)."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    done = aihd(["approve", str(manifest), "--folder", INSIDE], None)  # outside never approved
    assert done.returncode == 0, done.stderr
    before = _hashes(tmp_path / "listings", tmp_path / "enhanced")
    assert len(before) == 10
    done = aihd(["deliver", str(manifest), "--partial", "-o", str(tmp_path / output)], None)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("aihd: error: -o ") and "nothing was written" in line
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert _hashes(tmp_path / "listings", tmp_path / "enhanced") == before
    assert not (tmp_path / "delivery").exists()
    hint = line.split("`")[1]
    assert hint == f"aihd deliver {manifest} -o {tmp_path / 'delivery'}"


def test_a_photo_folder_of_another_manifest_of_the_ledger_is_refused(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """The ledger remembers which folders hold photos, whichever manifest found them."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _approve_all(manifest)
    elm = tmp_path / "elm-photos" / "9-elm" / "inside"
    photo_factory(elm, "hall.jpg", size=(160, 120))
    other = tmp_path / "elm.yaml"
    other.write_text(
        "version: 1\nledger: listing.ledger.sqlite\n"
        "rate_limit: {orders: 1000, per_seconds: 600}\n"
        f"folders:\n  - path: {elm.relative_to(tmp_path)}\n"
    )
    assert aihd(["run", str(other), *FAST], sandbox).returncode == 0
    other.unlink()  # gone: its folders are still in the ledger
    before = _hashes(tmp_path / "elm-photos")
    done = aihd(["deliver", str(manifest), "-o", str(tmp_path / "elm-photos")], None)
    assert done.returncode == 2
    assert f"contains the photo folder {elm}" in done.stderr
    assert "recorded in ledger" in done.stderr
    assert _hashes(tmp_path / "elm-photos") == before


def test_a_second_delivery_moves_a_users_file_aside_and_deletes_only_its_own(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A note and an edited photo the user put in the listing's delivery folder survive, moved
    aside with a warning; the photos deliver wrote are replaced."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _approve_all(manifest)
    originals = _hashes(tmp_path / "listings", tmp_path / "enhanced")
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "delivery" / "12-oak-st"
    assert sorted(p.name for p in folder.iterdir()) == [*PHOTOS, "disclosure.csv"]
    note = folder / "notes for the agent.txt"
    note.write_text("call before the open house")
    (folder / "extra").mkdir()
    (folder / "extra" / "drone.jpg").write_bytes(b"the user's own photo")
    (folder / "02-yard.jpg").write_bytes(b"edited by hand")  # ours once, the user's now
    theirs = {
        "notes for the agent.txt": note.read_bytes(),
        "extra/drone.jpg": b"the user's own photo",
        "02-yard.jpg": b"edited by hand",
    }

    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [*PHOTOS, "disclosure.csv"]
    (aside,) = [p for p in folder.parent.iterdir() if ".moved-aside-" in p.name]
    assert aside.name.startswith("12-oak-st.moved-aside-")
    for name, data in theirs.items():
        assert (aside / name).read_bytes() == data
        assert f"{folder / name} was not written by aihd: moved to {aside / name}" in done.stderr
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert _hashes(tmp_path / "listings", tmp_path / "enhanced") == originals

    # All rejected since: the delivery is taken away, a new user file again moved aside.
    (folder / "late.txt").write_text("added after")
    assert aihd(["reject", str(manifest), "--folder", "listings/*/*"], None).returncode == 0
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert "12-oak-st: no approved photo now; delivery removed" in done.stderr
    assert not folder.exists()
    moved = [p for p in folder.parent.rglob("late.txt")]
    assert [p.read_text() for p in moved] == ["added after"]
    assert _hashes(tmp_path / "listings", tmp_path / "enhanced") == originals


def test_a_listing_with_undecided_photos_is_left_out_unless_partial(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """1 of 5 decided: no 1-photo listing, one line naming it and its count; --partial
    delivers the approved one; --dry-run says what it would write and writes nothing."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    front = str(tmp_path / OUTSIDE / "front.jpg")
    assert aihd(["approve", str(manifest), front], None).returncode == 0
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert (
        "aihd deliver: listings/12-oak-st: 4 of 5 photos not decided yet; not delivered "
        "(decide them, or --partial)"
    ) in done.stderr
    assert not (tmp_path / "delivery" / "12-oak-st").exists()

    dry = aihd(["deliver", str(manifest), "--partial", "--dry-run"], None)
    assert dry.returncode == 0, dry.stderr
    folder = tmp_path / "delivery" / "12-oak-st"
    assert f"would write {folder}/: 1 photos and disclosure.csv" in dry.stdout
    assert "01-front.jpg" in dry.stdout
    assert not (tmp_path / "delivery").exists() or not any((tmp_path / "delivery").iterdir())

    done = aihd(["deliver", str(manifest), "--partial"], None)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["01-front.jpg", "disclosure.csv"]


def test_a_killed_delivery_leaves_nothing_that_is_deleted_unless_deliver_wrote_it(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """A stage folder a kill left behind: its photos (recorded before they were written) go,
    a stranger file in it is moved aside."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    _approve_all(manifest)
    assert aihd(["deliver", str(manifest)], None).returncode == 0
    root = tmp_path / "delivery"
    stage = root / ".aihd-deliver-12-oak-st-deadbeef"
    stage.mkdir()
    for photo in (root / "12-oak-st").iterdir():
        (stage / photo.name).write_bytes(photo.read_bytes())
    (stage / "stranger.txt").write_text("not ours")
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert not stage.exists()
    assert [p.read_text() for p in root.rglob("stranger.txt")] == ["not ours"]
    assert sorted(p.name for p in (root / "12-oak-st").iterdir()) == [*PHOTOS, "disclosure.csv"]
    assert {r.state.value for r in ledger_rows(manifest)} == {"completed"}
