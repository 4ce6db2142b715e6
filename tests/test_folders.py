"""Folder entries: globs matched at each load, overrides for subfolders, each photo found once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.errors import ManifestError
from pipeline.manifest.loader import FolderSpec, load_manifest
from pipeline.ordering.scan import list_and_check


def _write(root: Path, text: str) -> Path:
    path = root / "listings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff" + path.name.encode() + b"\xff\xd9")


def _found(folder: FolderSpec) -> list[str]:
    return [Path(p.stat.path).name for p in list_and_check(folder, {})]


def test_a_glob_matches_each_listing_and_picks_up_new_ones_at_the_next_load(
    tmp_path: Path,
) -> None:
    """`listings/*/inside` names every listing's inside folder, new listings included."""
    for listing in ("12-oak", "7-elm"):
        (tmp_path / "listings" / listing / "inside").mkdir(parents=True)
    manifest = _write(tmp_path, "version: 1\nfolders:\n  - path: listings/*/inside\n")
    assert [f.name for f in load_manifest(manifest).folders] == [
        "listings/12-oak/inside",
        "listings/7-elm/inside",
    ]
    (tmp_path / "listings" / "3-ash" / "inside").mkdir(parents=True)
    names = [f.name for f in load_manifest(manifest).folders]
    assert names == ["listings/12-oak/inside", "listings/3-ash/inside", "listings/7-elm/inside"]


def test_double_star_matches_at_any_depth(tmp_path: Path) -> None:
    """`listings/**/exterior` finds exterior folders however deep they are."""
    (tmp_path / "listings" / "a" / "exterior").mkdir(parents=True)
    (tmp_path / "listings" / "b" / "2024" / "exterior").mkdir(parents=True)
    manifest = _write(
        tmp_path, "version: 1\nfolders:\n  - path: listings/**/exterior\n    space: outdoor\n"
    )
    folders = load_manifest(manifest).folders
    assert [f.name for f in folders] == ["listings/a/exterior", "listings/b/2024/exterior"]
    assert {f.space for f in folders} == {"outdoor"}


def test_a_recursive_parent_with_an_override_finds_each_photo_once(tmp_path: Path) -> None:
    """The subfolder's photos are found only by its own entry, with its options over the
    parent's; the parent's walk skips it (no photo is found twice, so none is paid twice)."""
    root = tmp_path / "listings"
    _touch(root / "top.jpg", root / "a" / "inside" / "k.jpg", root / "a" / "inside" / "x" / "d.jpg")
    _touch(root / "a" / "garden" / "g.jpg")
    manifest = _write(
        tmp_path,
        "version: 1\n"
        "folders:\n"
        "  - path: listings\n"
        "    recursive: true\n"
        '    enhancements: ["Add Fire to Fireplace"]\n'
        "  - path: listings/*/inside\n"
        "    space: outdoor\n",
    )
    parent, inside = load_manifest(manifest).folders
    assert (parent.name, inside.name) == ("listings", "listings/a/inside")
    assert sorted(_found(parent)) == ["g.jpg", "top.jpg"]
    assert sorted(_found(inside)) == ["d.jpg", "k.jpg"]
    # The override changes only what it writes: the parent's toggles and recursion stay.
    assert (inside.space, inside.enhancements, inside.recursive) == (
        "outdoor",
        ("Add Fire to Fireplace",),
        True,
    )
    assert inside.space_line == 7 and inside.enhancements_line == 5


def test_a_non_recursive_override_leaves_its_subfolders_to_the_parent(tmp_path: Path) -> None:
    """An override with recursive: false takes its own files; its subfolders stay the parent's."""
    root = tmp_path / "listings"
    _touch(root / "a" / "k.jpg", root / "a" / "old" / "o.jpg")
    manifest = _write(
        tmp_path,
        "version: 1\nfolders:\n  - path: listings\n    recursive: true\n"
        "  - path: listings/a\n    recursive: false\n    space: outdoor\n",
    )
    parent, listing = load_manifest(manifest).folders
    assert _found(parent) == ["o.jpg"]
    assert _found(listing) == ["k.jpg"]


def test_later_entries_override_earlier_ones_for_the_folders_they_match(tmp_path: Path) -> None:
    """A plain path after a glob overrides the glob's keys for that folder only."""
    for listing in ("a", "b"):
        (tmp_path / "l" / listing / "inside").mkdir(parents=True)
    manifest = _write(
        tmp_path,
        "version: 1\nfolders:\n  - path: l/*/inside\n    enhancements: [x]\n"
        "  - path: l/b/inside\n    space: outdoor\n",
    )
    spec = {f.name: (f.space, f.enhancements) for f in load_manifest(manifest).folders}
    assert spec == {"l/a/inside": ("indoor", ("x",)), "l/b/inside": ("outdoor", ("x",))}


def test_exclude_leaves_files_out_by_name_or_path(tmp_path: Path) -> None:
    """`exclude:` globs match a file's name or its path below the folder, any case."""
    root = tmp_path / "inside"
    _touch(root / "a.jpg", root / "Broken.JPG", root / "drafts" / "d.jpg", root / "ok" / "o.jpg")
    manifest = _write(
        tmp_path,
        "version: 1\nfolders:\n  - path: inside\n    recursive: true\n"
        '    exclude: ["broken.jpg", "drafts/*"]\n',
    )
    assert sorted(_found(load_manifest(manifest).folders[0])) == ["a.jpg", "o.jpg"]


def test_a_vanished_folder_or_empty_pattern_is_a_warning_and_strict_refuses(
    tmp_path: Path,
) -> None:
    """An archived listing skips that folder only; --strict restores the refusal at file:line."""
    (tmp_path / "inside").mkdir()
    manifest = _write(
        tmp_path,
        "version: 1\nfolders:\n  - path: inside\n  - path: archived/12-oak\n"
        "  - path: nothing/*/here\n",
    )
    loaded = load_manifest(manifest)
    assert [f.name for f in loaded.folders] == ["inside"]
    assert len(loaded.warnings) == 2
    assert loaded.warnings[0].startswith(f"{manifest}:4: ")
    assert "folder not found" in loaded.warnings[0]
    assert loaded.warnings[1].startswith(f"{manifest}:5: ")
    assert "matches no folder" in loaded.warnings[1]
    with pytest.raises(ManifestError, match=r"listings\.yaml:4: .*folder not found"):
        load_manifest(manifest, strict=True)


@pytest.mark.parametrize(
    ("output", "folders", "how"),
    [
        (".", "  - path: photos\n", "contains"),
        ("photos", "  - path: photos\n", "is"),
        ("photos/enhanced", "  - path: photos\n", "lies inside"),
        ("listings/enhanced", "  - path: listings/*/inside\n", "lies inside"),
        ("listings/a", "  - path: listings/*/inside\n", "contains"),
    ],
)
def test_an_output_over_a_photo_folder_is_refused(
    tmp_path: Path, output: str, folders: str, how: str
) -> None:
    """output: that is, contains or lies inside a photo folder (or a pattern's literal start)
    would overwrite originals or order results again: exit 2 at output's line."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "listings" / "a" / "inside").mkdir(parents=True)
    manifest = _write(tmp_path, f"version: 1\noutput: {output}\nfolders:\n{folders}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    message = str(caught.value)
    assert message.startswith(f"{manifest}:2: output: ") and f" {how} the photo folder" in message
    assert "\n" not in message and caught.value.exit_code == 2


def test_a_symlink_loop_folder_is_a_one_line_error_at_its_line(tmp_path: Path) -> None:
    """A folder that is a loop of symbolic links names file:line and says what it is."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "inside").mkdir()
    manifest = _write(tmp_path, "version: 1\nfolders:\n  - path: inside\n  - path: a\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    message = str(caught.value)
    assert message.startswith(f"{manifest}:4: ") and "loop of symbolic links" in message
    assert "\n" not in message


def test_a_5000_character_path_is_a_short_one_line_error(tmp_path: Path) -> None:
    """A path too long for the system is named at file:line, shortened, in one line."""
    long_path = "/".join(["abcdefghij"] * 455)  # 5,004 characters
    manifest = _write(tmp_path, f"version: 1\nfolders:\n  - path: {long_path}\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    message = str(caught.value)
    assert message.startswith(f"{manifest}:3: ") and "too long" in message
    assert "\n" not in message and len(message) < 600


def test_a_symlinked_subfolder_is_not_walked_so_a_loop_inside_cannot_hang(tmp_path: Path) -> None:
    """A recursive walk and a ** pattern never follow links: a loop below is harmless."""
    _touch(tmp_path / "inside" / "a.jpg")
    os.symlink(tmp_path / "inside", tmp_path / "inside" / "again")
    manifest = _write(
        tmp_path,
        "version: 1\noutput: ../out\nfolders:\n  - path: '**/inside'\n    recursive: true\n",
    )
    (folder,) = load_manifest(manifest).folders
    assert _found(folder) == ["a.jpg"]


@pytest.mark.slow
def test_libyaml_and_the_strict_loader_read_any_text_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast parser (for 10,000-folder manifests) gives the strict loader's result on
    seeded random YAML-like text and bytes: the same data, or the same error."""
    import random

    from pipeline.manifest import safe_yaml as _yaml

    fast = _yaml._FastLoader
    if fast is None:
        pytest.skip("PyYAML without libyaml here")
    path = tmp_path / "m.yaml"

    def outcome(data: bytes) -> tuple[str, str]:
        path.write_bytes(data)
        try:
            return "data", repr(_yaml.load_yaml(path))
        except ManifestError as exc:
            return "error", str(exc)
        except Exception as exc:  # a control character: the strict loader's own to map
            return type(exc).__name__, ""

    alphabet = (
        "version: 1\nfolders:\n  - path: [a]{}&*!|>'\"#%@`\x00\t\r\ufeff\u2028\x85é0.5e3~-?,:\\ "
        "\n\n  yes no null ~ 0x1f 1e308 .inf"
    )
    rnd = random.Random(20261128)
    for n in range(1500):
        size = rnd.randint(0, 80)
        if n % 5 == 0:
            data = bytes(rnd.getrandbits(8) for _ in range(size))
        else:
            data = "".join(rnd.choice(alphabet) for _ in range(size)).encode()
        monkeypatch.setattr(_yaml, "_FastLoader", fast)
        with_libyaml = outcome(data)
        monkeypatch.setattr(_yaml, "_FastLoader", None)
        assert with_libyaml == outcome(data), data
