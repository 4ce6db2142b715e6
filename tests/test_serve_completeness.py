"""When a photo is complete (pipeline/serve/completeness.py), on the caller's clock: a pure
component, so the times here are given, not waited for. Which folders a changed path
concerns (watcher.FolderMap), on real folders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ordering.scan import FileStat
from pipeline.serve.completeness import Completeness, FolderLook, is_partial, look
from pipeline.serve.watcher import FolderMap
from tests.cli_helpers import write_manifest

QUIET = 60.0
F = "/m/in"


def _look(files: dict[str, tuple[int, int]], marker: int | None = None) -> FolderLook:
    stats = {
        f"{F}/{name}": FileStat(f"{F}/{name}", size, mtime) for name, (size, mtime) in files.items()
    }
    return FolderLook(stats, {F: marker})


def test_a_file_is_taken_after_the_quiet_period_and_two_equal_looks() -> None:
    done = Completeness(QUIET)
    done.changed([F], now=0.0)
    assert done.due(now=58.0) == [] and done.next_due() == 59.0  # quiet minus the gap
    assert done.complete(F, _look({"a.jpg": (10, 1)}), now=59.0) == []  # the first look
    assert done.due(now=59.5) == [] and done.due(now=60.0) == [F]
    (taken,) = done.complete(F, _look({"a.jpg": (10, 1)}), now=60.0)
    assert taken.path == f"{F}/a.jpg"
    assert done.next_due() is None  # nothing left to look at until a change


def test_a_change_restarts_the_quiet_period_and_a_growing_file_waits() -> None:
    done = Completeness(QUIET)
    done.changed([F], now=0.0)
    assert done.complete(F, _look({"a.jpg": (10, 1)}), now=59.0) == []
    done.changed([F], now=59.5)  # written again
    assert done.complete(F, _look({"a.jpg": (20, 2)}), now=60.0) == []  # not quiet
    assert done.complete(F, _look({"a.jpg": (20, 2)}), now=118.5) == []  # its first look
    assert [s.path for s in done.complete(F, _look({"a.jpg": (20, 2)}), now=119.5)] == [
        f"{F}/a.jpg"
    ]


def test_a_file_changing_without_events_is_looked_at_until_it_holds() -> None:
    """A writer on a network mount raises no event: the looks see it grow, and wait."""
    done = Completeness(QUIET)
    done.changed([F], now=0.0)
    done.complete(F, _look({"a.jpg": (10, 1)}), now=59.0)
    assert done.complete(F, _look({"a.jpg": (30, 3)}), now=60.0) == []
    assert done.next_due() == 61.0  # again a gap later
    assert [s.size for s in done.complete(F, _look({"a.jpg": (30, 3)}), now=61.0)] == [30]


def test_a_done_marker_written_after_the_files_takes_them_at_once() -> None:
    done = Completeness(QUIET)
    done.changed([F], now=0.0)
    marked = _look({"a.jpg": (10, 5), "late.jpg": (10, 9)}, marker=7)
    assert [s.path for s in done.complete(F, marked, now=1.0)] == [f"{F}/a.jpg"]


def test_a_file_taken_is_not_handed_on_again_unless_it_changes_or_a_rescan_asks() -> None:
    done = Completeness(QUIET)
    done.changed([F], now=0.0)
    files = _look({"a.jpg": (10, 1)})
    done.complete(F, files, now=59.0)
    assert len(done.complete(F, files, now=60.0)) == 1
    done.changed([F], now=100.0)
    done.complete(F, files, now=159.0)
    assert done.complete(F, files, now=160.0) == []  # unchanged: handed on already
    done.changed([F], now=200.0, again=True)  # a rescan: the ledger decides again
    done.complete(F, files, now=259.0)
    assert len(done.complete(F, files, now=260.0)) == 1


@pytest.mark.parametrize(
    "name",
    ["a.jpg.part", "a.JPG.TMP", "~a.jpg", ".a.jpg", "a.jpg.!sync", "a.jpg.crdownload"],
)
def test_partial_names_are_never_taken(name: str, tmp_path: Path) -> None:
    assert is_partial(name)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(b"\xff\xd8\xff partial")
    (tmp_path / "in" / "whole.jpg").write_bytes(b"\xff\xd8\xff whole")
    manifest_path = write_manifest(tmp_path, {"in": ("indoor", [])})
    from pipeline.manifest.loader import load_manifest

    (folder,) = load_manifest(manifest_path).folders
    folder = dataclasses.replace(folder, patterns=("*",))
    assert [Path(p).name for p in look(folder).files] == ["whole.jpg"]


@given(st.lists(st.tuples(st.floats(0, 1000), st.booleans()), max_size=30))
def test_nothing_is_taken_within_the_quiet_period_of_the_last_change(
    events: list[tuple[float, bool]],
) -> None:
    """Whatever the order of changes and looks, a file is never handed on before its folder
    was quiet for the whole quiet period (without a marker)."""
    done = Completeness(QUIET)
    last_change = 0.0
    done.changed([F], now=0.0)
    files = _look({"a.jpg": (10, 1)})
    for at, is_change in sorted(events):
        if is_change:
            done.changed([F], now=at)
            last_change = at
        elif done.complete(F, files, now=at):
            assert at - last_change >= QUIET - 1e-6


def test_a_changed_path_concerns_its_folder_a_recursive_one_above_and_folders_moved_in(
    tmp_path: Path,
) -> None:
    folder_map = FolderMap(
        [("in", "/l/a/inside", False), ("all", "/l/b", True), ("deep", "/l/b/x/y", False)],
        ["/l"],
    )
    assert folder_map.owners("/l/a/inside/k.jpg") == ["in"]
    assert folder_map.owners("/l/a/inside/sub/k.jpg") == []  # not recursive
    assert sorted(folder_map.owners("/l/b/x/y/k.jpg")) == ["all", "deep"]
    assert folder_map.owners("/l/a") == ["in"]  # a listing folder moved in whole
    assert folder_map.owners("/l/c/inside") == [] and folder_map.under_pattern_root("/l/c")
