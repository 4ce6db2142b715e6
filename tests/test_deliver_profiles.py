"""Each built-in delivery profile on a listing of every kind of photo: limits met, the
watermark exactly on the altered photos where required (and nowhere where forbidden), originals
in their places, and a disclosure whose rows say in words what each v1 toggle and v3 tool did.
Every original and result is hashed before and after: deliver never writes into them."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from pipeline.errors import ManifestError
from pipeline.manifest.loader import load_manifest
from pipeline.manifest.profiles import BUILT_IN, DeliveryProfile
from pipeline.review.mls import render_for_mls
from tests.cli_helpers import aihd
from tests.deliver_helpers import (
    KINDS,
    LISTING,
    deliver_json,
    disclosure,
    hashes,
    kind_of,
    make_listing,
)

FOLDER = Path("delivery/7-ash")


def _expected_files(profile: DeliveryProfile) -> list[str]:
    """The listing's files in order: a panorama only where bars can make it fit, each
    altered photo's original before or after it where the profile places originals."""
    names: list[str] = []
    for kind in KINDS:
        if kind.wide and profile.aspect == "keep":
            continue
        group = [kind.stem]
        if kind.altered and profile.originals != "none":
            original = f"{kind.stem}-original"
            group = [original, *group] if profile.originals == "before" else [*group, original]
        names += [f"{len(names) + n + 1:02}-{stem}.jpg" for n, stem in enumerate(group)]
    return names


def _unstamped(path: Path, profile: DeliveryProfile, original: Path | None) -> Image.Image:
    """The same photo made without a watermark, as a reference for the pixel check."""
    plain = dataclasses.replace(profile, watermark="forbidden", watermark_text="")
    data = render_for_mls(path, plain, original).data
    return Image.open(io.BytesIO(data)).convert("RGB")


def _corner(size: tuple[int, int], corner: str) -> tuple[int, int, int, int]:
    """The quarter of a photo where its watermark may be (a generous one)."""
    width, height = size
    left = 0 if corner.endswith("left") else width // 2
    top = 0 if corner.startswith("top") else height // 2
    return left, top, left + width // 2, top + height // 2


def _inside(box: tuple[int, int, int, int], area: tuple[int, int, int, int]) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and box[2] <= area[2] and box[3] <= area[3]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BUILT_IN))
def test_a_built_in_profile_on_every_kind_of_photo(tmp_path: Path, name: str) -> None:
    profile = BUILT_IN[name]
    manifest = make_listing(tmp_path)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    code, summary, err = deliver_json(manifest, "--profile", name)
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources

    # The panorama: only bars make 20000x200 fit; elsewhere it is named and left out.
    if profile.aspect == "keep":
        assert code == 1
        assert "f-pano.jpg: its shape (20000x200) cannot meet both the minimum" in err
        assert "aspect: pad-4:3" in err
    else:
        assert code == 0, err
    folder = tmp_path / FOLDER
    expected = _expected_files(profile)
    extra = ["disclosure.csv", *(["remarks.txt"] if profile.remarks_prefix else [])]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, *extra])
    (listing,) = summary["listings"]  # type: ignore[misc]
    assert listing["photos"] == len(expected) and listing["encoded"] == len(expected)

    rows = disclosure(folder)
    assert [r["File"] for r in rows] == expected
    assert [int(r["Order"]) for r in rows] == list(range(1, len(expected) + 1))
    for row in rows:
        path = folder / row["File"]
        kind = kind_of(row["File"])
        is_original = row["File"].endswith("-original.jpg")
        # Limits met.
        assert path.stat().st_size <= profile.max_bytes
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert not image.getexif()  # every built-in strips EXIF
            size = image.size
            delivered = image.convert("RGB")
        assert (int(row["ImageWidth"]), int(row["ImageHeight"])) == size
        assert profile.min_long <= max(size) <= profile.long_edge
        assert min(size) >= profile.min_short
        if profile.aspect == "pad-4:3":
            assert size == (1024, 768)
        assert row["MediaCategory"] == "Photo" and row["MimeType"] == "image/jpeg"

        # The watermark: on an altered photo where the profile draws one, nowhere else.
        stamped = kind.altered and not is_original and profile.stamps
        result = tmp_path / "enhanced" / LISTING / kind.part / f"{kind.stem}{kind.suffix}"
        source = tmp_path / LISTING / kind.part / f"{kind.stem}.jpg" if is_original else result
        reference = _unstamped(source, profile, None)
        changed = ImageChops.difference(delivered, reference).getbbox()
        if stamped:
            assert changed is not None, f"{row['File']}: no watermark"
            assert _inside(changed, _corner(size, profile.watermark_corner)), row["File"]
            box = delivered.crop(changed).convert("L")
            low, high = box.getextrema()  # type: ignore[misc]
            assert high - low > 150  # light words on a dark box, or dark on light
        else:
            assert changed is None, f"{row['File']}: marked though it should not be"

        # Words and originals.
        if is_original:
            assert row["Altered"] == "false" and row["OriginalFile"] == ""
            assert row["ShortDescription"] == "Original photo, unaltered"
            step = 1 if profile.originals == "before" else -1  # the altered photo beside it
            photo = rows[int(row["Order"]) - 1 + step]
            assert kind_of(photo["File"]) == kind and photo["OriginalFile"] == row["File"]
            assert f"The unaltered original of {photo['File']}" in row["LongDescription"]
            continue
        assert row["Altered"] == ("true" if kind.altered else "false")
        for words in kind.words:
            assert words in row["LongDescription"], (row["File"], row["LongDescription"])
        if kind.altered:
            assert row["ShortDescription"] == profile.description
            if profile.originals != "none":
                step = 1 if profile.originals == "after" else -1
                assert row["OriginalFile"] == rows[int(row["Order"]) - 1 + step]["File"]
        else:
            assert row["ShortDescription"] == "" and row["OriginalFile"] == ""
            assert row["LongDescription"].startswith("Exempt edits only")
    text = (folder / "disclosure.csv").read_text()
    assert str(tmp_path) not in text and "/enhanced/" not in text  # names, never paths
    if profile.remarks_prefix:
        assert (folder / "remarks.txt").read_text() == profile.remarks_prefix + "\n"
    if name == "no-text":  # the cover (an exterior) is never an altered photo
        assert rows[0]["File"] == "01-a-dusk-original.jpg" and rows[0]["Altered"] == "false"
    if name == "crmls":
        assert expected[:3] == ["01-a-dusk.jpg", "02-a-dusk-original.jpg", "03-b-front.jpg"]


def test_a_listing_of_exempt_edits_only_gets_no_remarks_and_no_marks(tmp_path: Path) -> None:
    """Stellar's remarks sentence would be untrue of a listing with no altered photo."""
    exempt = [k for k in KINDS if not k.altered]
    manifest = make_listing(tmp_path, exempt)
    sources = hashes(tmp_path / "listings", tmp_path / "enhanced")
    code, _summary, err = deliver_json(manifest, "--profile", "stellar")
    assert code == 0, err
    assert hashes(tmp_path / "listings", tmp_path / "enhanced") == sources
    folder = tmp_path / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-b-front.jpg",
        "02-e-sixteen.jpg",
        "disclosure.csv",
    ]
    assert {r["Altered"] for r in disclosure(folder)} == {"false"}


def _profiles(tmp_path: Path, text: str) -> dict[str, DeliveryProfile]:
    manifest = tmp_path / "p.yaml"
    manifest.write_text("version: 1\nfolders:\n  - path: photos\ndelivery_profiles:\n" + text)
    return dict(load_manifest(manifest).delivery_profiles)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        _profiles(tmp_path, text)
    return str(caught.value)


def test_a_manifest_profile_extends_a_built_in_or_another_of_its_own(tmp_path: Path) -> None:
    """A profile named like a built-in changes that built-in; others extend mls-default unless
    extends: says; a chain of the manifest's own is followed."""
    made = _profiles(
        tmp_path,
        "  crmls: {long_edge: 3000}\n"
        "  office: {extends: team, watermark_corner: top-left}\n"
        "  team: {extends: smartmls, watermark_text: Staged by AI, max_photos: 25}\n"
        "  plain: {quality: 85, exif: keep, file_name: '{listing}-{order:03}-{stem}.jpg'}\n",
    )
    assert made["crmls"] == dataclasses.replace(BUILT_IN["crmls"], long_edge=3000, extends="crmls")
    office = made["office"]
    assert (office.extends, office.watermark, office.watermark_text) == (
        "team",
        "required",
        "Staged by AI",
    )
    assert (office.watermark_corner, office.max_photos) == ("top-left", 25)
    assert office.aspect == "pad-4:3"
    assert made["plain"].extends == "mls-default" and made["plain"].exif == "keep"
    assert made["plain"].rule == BUILT_IN["mls-default"].rule  # it still follows its base


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "  mine:\n    extends: crmsl\n",
            6,
            "delivery_profiles.mine.extends: extends 'crmsl': no such profile; valid: "
            "mls-default, crmls, stellar, smartmls, california, no-text (built in)",
        ),
        (
            "  a: {extends: b}\n  b:\n    extends: a\n",
            7,
            "extends a -> b -> a: profiles cannot extend each other in a circle",
        ),
        (
            "  mine:\n    watermark: sometimes\n",
            6,
            "delivery_profiles.mine.watermark: must be one of 'required', 'forbidden' or "
            "'optional'",
        ),
        (
            "  mine:\n    aspect: 16:9\n",
            6,
            "must be one of 'keep' or 'pad-4:3'",
        ),
        (
            "  mine:\n    originals: beside\n",
            6,
            "must be one of 'none', 'before' or 'after'",
        ),
        (
            "  mine:\n    watermark: required\n",
            6,
            "watermark: required needs the text to draw: add watermark_text",
        ),
        (
            "  mine:\n    extends: stellar\n    watermark_text: Staged\n",
            7,
            "the profile forbids a watermark (watermark: forbidden, from stellar): delete "
            "watermark_text",
        ),
        (
            "  mine:\n    file_name: '{order}-{room}.jpg'\n",
            6,
            "the template can use only {order}, {stem}, {listing}",
        ),
        (
            "  mine:\n    file_name: '{stem}.jpg'\n",
            6,
            "the template must hold {order}",
        ),
        (
            "  mine:\n    file_name: '{order}-{stem}.png'\n",
            6,
            "must make a file name ending in .jpg",
        ),
        (
            "  mine:\n    description: " + "x" * 51 + "\n",
            6,
            "must be at most 50 characters",
        ),
    ],
)
def test_a_profile_no_photo_could_meet_is_an_error_at_its_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    error = _error(tmp_path, text)
    assert error.startswith(f"{tmp_path / 'p.yaml'}:{line}: "), error
    assert message in error, error


def test_list_profiles_shows_each_rule_and_source_and_the_manifests_own(tmp_path: Path) -> None:
    done = aihd(["deliver", "--list-profiles"], None)
    assert done.returncode == 0, done.stderr
    for profile in BUILT_IN.values():
        assert f"{profile.name}  (built in)" in done.stdout
        assert f"  rule: {profile.rule}" in done.stdout
        assert f"  source: {profile.source}" in done.stdout
    assert "check each before relying on it" in done.stdout
    assert "watermark required 'Virtually Staged' (bottom-right)" in done.stdout  # smartmls
    manifest = tmp_path / "p.yaml"
    manifest.write_text(
        "version: 1\nfolders:\n  - path: photos\ndelivery_profiles:\n  office: {extends: stellar}\n"
    )
    done = aihd(["deliver", str(manifest), "--list-profiles"], None)
    assert done.returncode == 0, done.stderr
    assert "office  (p.yaml, extends stellar)" in done.stdout
    done = aihd(["deliver"], None)
    assert done.returncode == 2
    assert "give the MANIFEST to deliver" in done.stderr
    assert "`aihd deliver --list-profiles`" in done.stderr
