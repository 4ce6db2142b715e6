"""``aihd deliver``: approved photos of every kind meet the profile, named and disclosed."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from pipeline import api
from pipeline.ledger import FoundPhoto, PhotoOptions, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import aihd, ledger_rows
from tests.deliver_helpers import hashes
from tests.review_helpers import INSIDE, OUTSIDE, PhotoFactory, collected_listing

EXIF_ORIENTATION, EXIF_MAKE, EXIF_SOFTWARE = 0x0112, 0x010F, 0x0131
EXIF_COPYRIGHT, EXIF_GPS = 0x8298, 0x8825
LISTING = Path("listings/9-elm")


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Results ready after 0.5 s: collect polls no order before its eta."""
    return make_sandbox(eta_seconds=1, time_scale=0.5)


def _noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def _results_of_every_kind(root: Path) -> dict[str, Path]:
    """Result-like files of the kinds the sandbox never returns (it answers with JPEGs)."""
    out = root / "enhanced" / LISTING
    out.mkdir(parents=True)
    made: dict[str, Path] = {}

    portrait = Image.new("RGB", (1500, 2400), (120, 140, 160))
    portrait.save(made.setdefault("portrait", out / "portrait.jpg"), quality=95)

    rotated = Image.new("RGB", (3000, 2000), (90, 90, 90))
    rotated.paste((250, 250, 250), (0, 0, 3000, 200))  # the top as stored: the right, upright
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    exif[EXIF_MAKE] = "TestCam"
    rotated.save(made.setdefault("rotated", out / "rotated.jpg"), exif=exif.tobytes())

    alpha = Image.new("RGBA", (800, 600), (20, 120, 20, 255))
    alpha.paste((0, 0, 0, 0), (0, 0, 400, 600))  # the left half transparent
    alpha.save(made.setdefault("alpha", out / "alpha.png"))

    cmyk = Image.new("CMYK", (2400, 1600), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(made.setdefault("cmyk", out / "cmyk.jpg"), quality=95)

    ramp = Image.linear_gradient("L").resize((1200, 900)).convert("I")
    sixteen = ramp.point(lambda v: v * 257).convert("I;16")
    sixteen.save(made.setdefault("sixteen", out / "sixteen.png"))
    return made


def _completed(
    root: Path, results: dict[str, Path], *, profiles: str = "", listing: str = ""
) -> Path:
    """A manifest and a ledger where each result is the collected result of an original."""
    for part in ("outside", "inside"):
        (root / LISTING / part).mkdir(parents=True)
    named = f"    listing: '{listing}'\n" if listing else ""
    manifest = root / "elm.yaml"
    manifest.write_text(
        "version: 1\nledger: elm.ledger.sqlite\nfolders:\n"
        f"  - path: {LISTING}/inside\n    enhancements: [Add Screen to TV]\n{named}"
        f"  - path: {LISTING}/outside\n    space: outdoor\n{named}" + profiles
    )
    ledger = open_ledger(root / "elm.ledger.sqlite")
    try:
        for n, (kind, result) in enumerate(sorted(results.items())):
            part = "outside" if kind == "portrait" else "inside"
            original = root / LISTING / part / f"{kind}.jpg"
            _noise((32, 24)).save(original)
            digest = hashlib.sha256(original.read_bytes()).hexdigest()
            space = "space-ie-outdoor" if part == "outside" else "space-ie-indoor"
            options = PhotoOptions(api.SERVICE, space, ("add screen to tv",) * (part == "inside"))
            st = original.stat()
            found = FoundPhoto(
                str(original), f"{LISTING}/{part}", st.st_size, st.st_mtime_ns, digest, options
            )
            (row,) = ledger.record_found([found])
            ledger.mark_uploaded(row.id, f"order-{n}")
            ledger.mark_submitting(row.id)
            ledger.mark_submitted(row.id, f"image-{n}", 30)
            ledger.mark_completed(row.id, [f"http://results/{n}"], [str(result)])
    finally:
        ledger.close()
    for part in ("outside", "inside"):
        done = aihd(["approve", str(manifest), "--folder", f"{LISTING}/{part}"], None)
        assert done.returncode == 0, done.stderr
    return manifest


def _disclosure(folder: Path) -> list[dict[str, str]]:
    with (folder / "disclosure.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_every_kind_of_photo_meets_the_default_profile(tmp_path: Path) -> None:
    """Portrait, EXIF-rotated, PNG with alpha, CMYK, 16-bit: upright sRGB JPEGs in bounds."""
    manifest = _completed(tmp_path, _results_of_every_kind(tmp_path))
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    done = aihd(["deliver", str(manifest), "--profile", "mls-default"], None)
    assert done.returncode == 0, done.stderr
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources
    folder = tmp_path / "delivery" / "9-elm"
    assert f"{folder}: 5 photos" in done.stdout
    names = sorted(p.name for p in folder.iterdir())
    # The exterior folder first though written second; then the rest by name.
    assert names == [
        "01-portrait.jpg",
        "02-alpha.jpg",
        "03-cmyk.jpg",
        "04-rotated.jpg",
        "05-sixteen.jpg",
        "disclosure.csv",
    ]
    srgb = ImageCms.getProfileDescription(ImageCms.createProfile("sRGB"))
    sizes = {}
    for name in names[:-1]:
        path = folder / name
        assert path.stat().st_size <= 10_000_000
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert not image.getexif()  # mls-default strips EXIF
            icc = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            assert ImageCms.getProfileDescription(icc) == srgb
            long_side, short_side = max(image.size), min(image.size)
            assert 1024 <= long_side <= 2048 and short_side >= 768
            sizes[name] = image.size
            image.load()
            if name == "02-alpha.jpg":  # transparent on white, the rest kept
                assert min(image.getpixel((10, 10))) >= 250  # type: ignore[arg-type]
                r, g, b = image.getpixel((image.width - 10, 10))  # type: ignore[misc]
                assert g > 100 and r < 60 and b < 60
            if name == "03-cmyk.jpg":
                r, g, b = image.getpixel((10, 10))  # type: ignore[misc]
                assert r > 200 and g < 80 and b < 80
            if name == "04-rotated.jpg":  # stored turned: its bright band is now on the right
                assert min(image.getpixel((image.width - 5, image.height // 2))) > 230  # type: ignore[arg-type]
                assert max(image.getpixel((5, image.height // 2))) < 120  # type: ignore[arg-type]
            if name == "05-sixteen.jpg":  # scaled to 8 bits, not clipped to white
                middle = image.getpixel((image.width // 2, image.height // 2))
                assert 90 < middle[0] < 170  # type: ignore[index]
    assert sizes["01-portrait.jpg"] == (1280, 2048)
    assert sizes["02-alpha.jpg"] == (1024, 768)  # brought up to the minimum
    assert sizes["04-rotated.jpg"] == (1365, 2048)
    rows = _disclosure(folder)
    assert [r["File"] for r in rows] == names[:-1]
    assert [r["Order"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert "resized from 800x600" in rows[1]["LongDescription"]
    assert [(r["ImageWidth"], r["ImageHeight"]) for r in rows[:2]] == [
        ("1280", "2048"),
        ("1024", "768"),
    ]


def test_names_exteriors_first_and_the_disclosure_links_originals(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """Real sandbox results; rejected or undecided photos are not delivered, then or later."""
    manifest = collected_listing(tmp_path, sandbox, photo_factory)
    assert aihd(["approve", str(manifest), "--folder", INSIDE], None).returncode == 0
    assert aihd(["approve", str(manifest), "--folder", OUTSIDE], None).returncode == 0
    den = str(tmp_path / INSIDE / "den.jpg")
    assert aihd(["reject", str(manifest), den], None).returncode == 0
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert "1 completed photos not approved" in done.stderr
    folder = tmp_path / "delivery" / "12-oak-st"
    files = ["01-front.jpg", "02-yard.jpg", "03-bath.jpg", "04-kitchen.jpg"]
    assert sorted(p.name for p in folder.iterdir()) == [*files, "disclosure.csv"]
    rows = {Path(r.path).name: r for r in ledger_rows(manifest)}
    disclosed = _disclosure(folder)
    assert [d["File"] for d in disclosed] == files
    # The disclosure travels to an MLS: names only, never a local path.
    assert str(tmp_path) not in (folder / "disclosure.csv").read_text()
    originals = ["front.jpg", "yard.jpg", "bath.jpg", "kitchen.jpg"]
    for entry, name in zip(disclosed, originals, strict=True):
        fire = rows[name].folder == INSIDE  # the interior's toggle: an alteration
        assert entry["Altered"] == ("true" if fire else "false")
        assert entry["MediaCategory"] == "Photo" and entry["MimeType"] == "image/jpeg"
        assert entry["ShortDescription"] == ("Digitally altered" if fire else "")
        assert ("Add Fire to Fireplace" in entry["LongDescription"]) is fire
        assert "exposure, colour, sharpness" in entry["LongDescription"]
        assert "AI HomeDesign Image Enhancement" in entry["LongDescription"]
        assert entry["OriginalFile"] == ""  # mls-default places no originals

    kitchen = str(tmp_path / INSIDE / "kitchen.jpg")
    assert aihd(["reject", str(manifest), kitchen], None).returncode == 0
    assert aihd(["deliver", str(manifest)], None).returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == [*files[:3], "disclosure.csv"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]

    assert aihd(["reject", str(manifest), "--folder", INSIDE], None).returncode == 0
    assert aihd(["reject", str(manifest), "--folder", OUTSIDE], None).returncode == 0
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert "12-oak-st: no approved photo now; delivery removed" in done.stderr
    assert list(folder.parent.iterdir()) == []


@pytest.mark.slow
def test_quality_steps_down_to_fit_a_manifest_profile_that_keeps_exif(tmp_path: Path) -> None:
    """A 0.4 MB limit: quality falls until the photo fits; EXIF's camera and copyright are
    kept (upright), its location is dropped."""
    out = tmp_path / "enhanced"
    out.mkdir()
    noisy = _noise((2000, 1500))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 8
    exif[EXIF_MAKE] = "TestCam"
    exif[EXIF_COPYRIGHT] = "(c) Oak Realty"
    exif[EXIF_SOFTWARE] = "Editor 1.0"
    gps = exif.get_ifd(EXIF_GPS)
    gps[1], gps[2] = "N", (40.0, 26.0, 46.0)  # where the house is: never delivered
    noisy.save(out / "noisy.jpg", quality=100, exif=exif.tobytes())
    profiles = "delivery_profiles:\n  tight:\n    max_megabytes: 0.4\n    exif: keep\n"
    manifest = _completed(tmp_path, {"noisy": out / "noisy.jpg"}, profiles=profiles)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    done = aihd(["deliver", str(manifest), "--profile", "tight"], None)
    assert done.returncode == 0, done.stderr
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources
    delivered = tmp_path / "delivery" / "9-elm" / "01-noisy.jpg"
    assert delivered.stat().st_size <= 400_000
    with Image.open(delivered) as image:
        assert min(image.size) >= 768 and max(image.size) <= 2048
        assert image.height > image.width  # orientation 8 applied
        kept = image.getexif()
        assert kept[EXIF_MAKE] == "TestCam" and kept.get(EXIF_ORIENTATION, 1) == 1
    (entry,) = _disclosure(delivered.parent)
    assert int(entry["ImageWidth"]) == image.width


def test_a_shape_no_profile_size_can_hold_is_reported_and_the_rest_delivered(
    tmp_path: Path,
) -> None:
    """A 4000x400 panorama cannot be 2048 long and 768 high: exit 1, named, others go."""
    out = tmp_path / "enhanced"
    out.mkdir()
    Image.new("RGB", (4000, 400), (50, 60, 70)).save(out / "pano.jpg")
    Image.new("RGB", (1600, 1200), (50, 60, 70)).save(out / "room.jpg")
    manifest = _completed(tmp_path, {"pano": out / "pano.jpg", "room": out / "room.jpg"})
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 1
    assert f"not delivered: {out / 'pano.jpg'}: its shape (4000x400)" in done.stderr
    assert "Traceback" not in done.stderr
    delivered = sorted(p.name for p in (tmp_path / "delivery" / "9-elm").iterdir())
    assert delivered == ["01-room.jpg", "disclosure.csv"]


def test_an_unknown_or_impossible_profile_is_refused(tmp_path: Path) -> None:
    """--profile names a known one (the list is shown); a minimum above the long edge: exit 2."""
    manifest = _completed(tmp_path, {})
    done = aihd(["deliver", str(manifest), "--profile", "crmsl"], None)
    assert done.returncode == 2 and "known: california, crmls, mls-default" in done.stderr
    assert "`aihd deliver --list-profiles`" in done.stderr
    bad = manifest.with_name("bad.yaml")
    bad.write_text(manifest.read_text() + "delivery_profiles:\n  crmls:\n    long_edge: 1000\n")
    done = aihd(["deliver", str(bad), "--profile", "crmls"], None)
    assert done.returncode == 2
    assert f"{bad}:10: delivery_profiles.crmls: min_width/min_height" in done.stderr
    typo = manifest.with_name("typo.yaml")
    typo.write_text(manifest.read_text() + "delivery_profiles:\n  crmls:\n    long_egde: 1000\n")
    done = aihd(["deliver", str(typo)], None)
    assert done.returncode == 2 and "did you mean 'long_edge'?" in done.stderr
    assert not (tmp_path / "delivery").exists()


def test_a_delivery_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """-o naming a file: exit 2, the folder named, no traceback."""
    out = tmp_path / "enhanced"
    out.mkdir()
    Image.new("RGB", (1600, 1200), (50, 60, 70)).save(out / "room.jpg")
    manifest = _completed(tmp_path, {"room": out / "room.jpg"})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    done = aihd(["deliver", str(manifest), "-o", str(blocker)], None)
    assert done.returncode == 2
    assert f"{blocker}: cannot write the delivery" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_folder_listing_key_names_the_delivery_folder(tmp_path: Path) -> None:
    """listing: in the manifest groups folders under that name, exteriors still first."""
    out = tmp_path / "enhanced"
    out.mkdir()
    for kind in ("portrait", "room"):
        Image.new("RGB", (1600, 1200), (50, 60, 70)).save(out / f"{kind}.jpg")
    results = {"room": out / "room.jpg", "portrait": out / "portrait.jpg"}
    manifest = _completed(tmp_path, results, listing="Elm St #9")
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    delivered = sorted(p.name for p in (tmp_path / "delivery" / "Elm-St-9").iterdir())
    assert delivered == ["01-portrait.jpg", "02-room.jpg", "disclosure.csv"]


def _two_listings(root: Path, names: tuple[str, str], keys: tuple[str, str]) -> Path:
    """Two listings (listings/<name>/inside), one completed, approved photo each."""
    lines = ["version: 1", "ledger: two.ledger.sqlite", "folders:"]
    for name, key in zip(names, keys, strict=True):
        lines.append(f"  - path: listings/{name}/inside")
        lines += [f"    listing: '{key}'"] if key else []
    root.mkdir()
    manifest = root / "two.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    ledger = open_ledger(root / "two.ledger.sqlite")
    try:
        for n, name in enumerate(names):
            folder = root / "listings" / name / "inside"
            folder.mkdir(parents=True)
            original = folder / "room.jpg"
            _noise((32, 24)).save(original)
            result = root / "enhanced" / f"{n}.jpg"
            result.parent.mkdir(exist_ok=True)
            Image.new("RGB", (1600, 1200), (50, 60, 70)).save(result)
            options = PhotoOptions(api.SERVICE, "space-ie-indoor", ())
            st = original.stat()
            digest = hashlib.sha256(original.read_bytes()).hexdigest()
            found = FoundPhoto(
                str(original),
                f"listings/{name}/inside",
                st.st_size,
                st.st_mtime_ns,
                digest,
                options,
            )
            (row,) = ledger.record_found([found])
            ledger.mark_uploaded(row.id, f"order-{n}")
            ledger.mark_submitting(row.id)
            ledger.mark_submitted(row.id, f"image-{n}", 30)
            ledger.mark_completed(row.id, [f"http://results/{n}"], [str(result)])
    finally:
        ledger.close()
    done = aihd(["approve", str(manifest), "--folder", "listings/*/inside"], None)
    assert done.returncode == 0, done.stderr
    return manifest


def _refused(root: Path, names: tuple[str, str]) -> str:
    """Deliver two listings' photos that must not be delivered as they are named: exit 2 in
    one line, nothing written, the originals and results as they were. Its message."""
    manifest = _two_listings(root, names, ("", ""))
    originals = hashes(root / "listings", root / "enhanced")
    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (root / "delivery").exists()
    assert hashes(root / "listings", root / "enhanced") == originals
    return done.stderr


def _delivered(root: Path, names: tuple[str, str], keys: tuple[str, str]) -> list[Path]:
    """Deliver the two listings named with ``listing:`` keys: exit 0; the folders made."""
    done = aihd(["deliver", str(_two_listings(root, names, keys))], None)
    assert done.returncode == 0, done.stderr
    return sorted((root / "delivery").iterdir())


@pytest.mark.parametrize(
    "names",
    [
        ("12 Oak St", "12-Oak-St"),  # the same folder name once cleaned
        ("12-Oak-St", "12-oak-st"),  # one folder on a Mac's or Windows' disk
    ],
)
def test_two_listings_that_would_share_a_delivery_folder_are_refused_before_anything_is_written(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    """Two listings whose delivery folders would be one: the second would replace the first's
    delivery. Refused in one line naming both and the fix; nothing written, the originals as
    they were. Named apart with `listing:`, both are delivered."""
    same = tmp_path / "same"
    assert (
        f"listings listings/{names[0]} and listings/{names[1]} would both be delivered to "
        f"{same / 'delivery' / '12-Oak-St'}; give one of them a name of its own with "
        "`listing:` on its folders in the manifest"
    ) in _refused(same, names)
    apart = _delivered(tmp_path / "apart", names, ("", "12 Oak St unit B"))
    assert [p.name for p in apart] == ["12-Oak-St", "12-Oak-St-unit-B"]


def test_two_houses_under_folders_of_one_name_are_not_delivered_as_one_listing(
    tmp_path: Path,
) -> None:
    """2025/12-Oak-St and 2026/12-Oak-St: by default each folder's listing is the folder above
    it, so both would be one listing, two houses' photos in one MLS folder. Refused in one line
    naming both folders and both fixes; nothing written. Named apart they are two listings;
    named alike on purpose, one."""
    names = ("2025/12-Oak-St", "2026/12-Oak-St")
    same = tmp_path / "same"
    assert (
        "folders listings/2025/12-Oak-St/inside and listings/2026/12-Oak-St/inside would both "
        f"be delivered to {same / 'delivery' / '12-Oak-St'}, as one listing named after the "
        "folder above each; give one of them a name of its own with `listing:` in the "
        "manifest, or both `listing: 12-Oak-St` to deliver them as one"
    ) in _refused(same, names)
    apart = _delivered(tmp_path / "apart", names, ("", "12-Oak-St 2026"))
    assert [p.name for p in apart] == ["12-Oak-St", "12-Oak-St-2026"]
    (one,) = _delivered(tmp_path / "one", names, ("12-Oak-St", "12-Oak-St"))
    assert one.name == "12-Oak-St"
    assert len([p for p in one.iterdir() if p.suffix == ".jpg"]) == 2
