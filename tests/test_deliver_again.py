"""Delivering again encodes only what changed; ``--dry-run`` says what would be written and
why each photo is left out; ``--listing`` picks listings; a profile's photo limit holds.
Originals and results are hashed before and after every delivery."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipeline.ledger import open_ledger
from tests.cli_helpers import aihd
from tests.deliver_helpers import KINDS, LISTING, deliver_json, disclosure, hashes, make_listing

FOLDER = Path("delivery/7-ash")
FITTING = [k for k in KINDS if not k.wide]  # mls-default keeps the shape: no panorama


def _counts(summary: dict[str, object]) -> tuple[int, int]:
    return summary["encoded"], summary["reused"]  # type: ignore[return-value]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_a_changed_decision_encodes_one_photo_again(tmp_path: Path) -> None:
    """Counted, not timed: the summary says how many files were encoded and how many were
    copied from the last delivery because nothing they are made from changed."""
    profiles = (
        "delivery_profiles:\n"
        "  captioned:\n    description: AI-altered photo\n"  # words only: no pixel changes
        "  marked:\n    watermark_text: AI altered\n"  # altered photos get a watermark
    )
    manifest = make_listing(tmp_path, FITTING, profiles=profiles)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    folder = tmp_path / FOLDER

    code, summary, err = deliver_json(manifest)
    assert code == 0, err
    assert _counts(summary) == (6, 0)
    first = _files(folder)

    code, summary, err = deliver_json(manifest)
    assert code == 0 and _counts(summary) == (0, 6)
    assert _files(folder) == first  # the same bytes, copied

    alpha = str(tmp_path / LISTING / "inside" / "c-alpha.jpg")
    assert aihd(["reject", str(manifest), alpha], None).returncode == 0
    code, summary, err = deliver_json(manifest)
    assert code == 0 and _counts(summary) == (0, 5)
    names = [r["File"] for r in disclosure(folder)]
    assert names == [
        "01-a-dusk.jpg",
        "02-b-front.jpg",
        "03-d-cmyk.jpg",  # was 04: renamed, not encoded again
        "04-e-sixteen.jpg",
        "05-g-dot.jpg",
    ]
    assert (folder / "03-d-cmyk.jpg").read_bytes() == first["04-d-cmyk.jpg"]

    assert aihd(["approve", str(manifest), alpha], None).returncode == 0
    code, summary, err = deliver_json(manifest)
    assert code == 0 and _counts(summary) == (1, 5)  # the one decision that changed
    assert _files(folder) == first

    # A new result for one photo: that photo only.
    sixteen = tmp_path / "enhanced" / LISTING / "inside" / "e-sixteen.png"
    Image.new("RGB", (1200, 900), (10, 200, 10)).save(sixteen)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    code, summary, err = deliver_json(manifest)
    assert code == 0 and _counts(summary) == (1, 5)

    # A profile whose pixels are the same (a caption): nothing encoded; a watermark on the
    # four altered photos: those four, the two exempt ones copied.
    code, summary, err = deliver_json(manifest, "--profile", "captioned")
    assert code == 0 and _counts(summary) == (0, 6)
    assert disclosure(folder)[0]["ShortDescription"] == "AI-altered photo"
    code, summary, err = deliver_json(manifest, "--profile", "marked")
    assert code == 0 and _counts(summary) == (4, 2)
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources

    # The human output says the same.
    done = aihd(["deliver", str(manifest), "--profile", "marked"], None)
    assert done.returncode == 0, done.stderr
    assert f"{folder}: 6 photos (0 encoded, 6 unchanged)" in done.stdout


def test_a_dry_run_says_what_it_would_write_and_why_each_photo_is_left_out(
    tmp_path: Path,
) -> None:
    """Rejected, undecided, failed, a shape no size fits: each named with its reason; the
    originals a profile places are listed; nothing is written."""
    manifest = make_listing(tmp_path, approve=False)
    ledger = open_ledger(tmp_path / "ash.ledger.sqlite")
    try:
        rows = {Path(r.path).stem: r for r in ledger.photos()}
        ledger.mark_failed(rows["b-front"].id, "the API refused the photo", retryable=False)
    finally:
        ledger.close()
    for stem in ("a-dusk", "d-cmyk", "f-pano"):
        path = str(tmp_path / LISTING / ("outside" if stem == "a-dusk" else "inside") / stem)
        assert aihd(["approve", str(manifest), f"{path}.jpg"], None).returncode == 0
    inside = tmp_path / LISTING / "inside"
    assert aihd(["reject", str(manifest), str(inside / "g-dot.jpg")], None).returncode == 0
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")

    done = aihd(["deliver", str(manifest), "--profile", "crmls", "--partial", "--dry-run"], None)
    assert done.returncode == 1, done.stderr  # the panorama cannot be made
    folder = tmp_path / FOLDER
    out = done.stdout
    assert f"would write {folder}/: 4 photos and disclosure.csv" in out
    assert "  01-a-dusk.jpg  from " in out and "(encode, altered)" in out
    assert f"  02-a-dusk-original.jpg  the original {tmp_path / LISTING}/outside/a-dusk.jpg" in out
    assert "  03-d-cmyk.jpg  from " in out and "  04-d-cmyk-original.jpg  the original" in out
    left = [line for line in out.splitlines() if line.startswith("  left out: ")]
    assert sorted(left) == sorted(
        [
            f"  left out: {LISTING}/outside/b-front.jpg: failed (the API refused the photo)",
            f"  left out: {LISTING}/inside/c-alpha.jpg: not decided yet (approve or reject it)",
            f"  left out: {LISTING}/inside/e-sixteen.jpg: not decided yet (approve or reject it)",
            f"  left out: {LISTING}/inside/g-dot.jpg: rejected",
            f"  left out: {LISTING}/inside/f-pano.jpg: cannot be made: its shape (20000x200) "
            "cannot meet both the minimum 1024x768 and the long edge 2048 of profile crmls; "
            "crop it, or use a profile with aspect: pad-4:3",
        ]
    )
    assert not (tmp_path / "delivery").exists()
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources

    # Delivered, then asked again: the same files would be copied, not encoded.
    done = aihd(["deliver", str(manifest), "--profile", "crmls", "--partial"], None)
    assert done.returncode == 1
    before = _files(folder)
    done = aihd(["deliver", str(manifest), "--profile", "crmls", "--partial", "--dry-run"], None)
    assert "  01-a-dusk.jpg  from " in done.stdout
    assert done.stdout.count("(unchanged: copied from the last delivery") == 4
    assert "would remove 5 files an earlier delivery wrote" in done.stdout
    assert _files(folder) == before


def test_listing_picks_listings_by_name_folder_or_glob(tmp_path: Path) -> None:
    """Repeatable globs; one matching none is refused naming the listings, nothing written."""
    front = [k for k in KINDS if k.stem == "b-front"]
    manifest = make_listing(tmp_path, front)
    make_listing(tmp_path, front, listing="listings/9-elm")
    make_listing(tmp_path, front, listing="listings/12-oak")
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    done = aihd(["deliver", str(manifest), "--listing", "nope*"], None)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "aihd: error: --listing nope*: no listing of ash.yaml matches it; its listings: "
        "listings/12-oak, listings/7-ash, listings/9-elm"
    )
    assert not (tmp_path / "delivery").exists()

    code, summary, err = deliver_json(manifest, "--listing", "7-*", "--listing", "listings/12-oak")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "delivery").iterdir()) == ["12-oak", "7-ash"]
    assert [ls["listing"] for ls in summary["listings"]] == [  # type: ignore[attr-defined]
        "listings/12-oak",
        "listings/7-ash",
    ]
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources


def test_a_profiles_photo_limit_keeps_an_altered_photo_with_its_original(tmp_path: Path) -> None:
    """At most N photos, originals counted: a pair that does not fit is left out whole, with
    a line saying so; a later single photo may still fit."""
    profiles = (
        "delivery_profiles:\n"
        "  four:\n    extends: crmls\n    max_photos: 4\n"
        "  three:\n    extends: smartmls\n    max_photos: 3\n"
    )
    manifest = make_listing(tmp_path, profiles=profiles)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    code, _summary, err = deliver_json(manifest, "--profile", "four")
    assert code == 0, err  # the panorama (no size fits it) is not even tried: over the limit
    folder = tmp_path / FOLDER
    assert [r["File"] for r in disclosure(folder)] == [
        "01-a-dusk.jpg",
        "02-a-dusk-original.jpg",
        "03-b-front.jpg",
        "04-e-sixteen.jpg",
    ]
    assert (
        f"aihd deliver: left out: {LISTING}/inside/c-alpha.jpg: with its original over "
        "profile four's 4-photo limit"
    ) in err
    code, summary, err = deliver_json(manifest, "--profile", "three")
    assert code == 0, err
    assert [r["File"] for r in disclosure(folder)] == [
        "01-a-dusk.jpg",
        "02-b-front.jpg",
        "03-c-alpha.jpg",
    ]
    (listing,) = summary["listings"]  # type: ignore[misc]
    assert len(listing["left_out"]) == 4
    assert {o["why"] for o in listing["left_out"]} == {"over profile three's 3-photo limit"}
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources
