"""Any file name the disk holds is scanned, stored, ordered and collected (issue 20, item 4).

A name that is not UTF-8 (``caf\\xe9.jpg``, Latin-1 bytes on a Linux disk) is kept byte for byte
in the ledger (both stores) and shown escaped wherever aihd prints or writes it; one odd name
never stops the others, and plan and run agree. Names that are valid UTF-8 are stored as they
always were.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pipeline.filenames import shell_join, shell_quoted, shown, stored, unstored
from pipeline.ledger import State, open_ledger
from pipeline.review.decisions import DECISIONS_FORMAT
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows, write_manifest
from tests.desk_helpers import served_desk

PhotoFactory = Callable[..., Path]
# Latin-1, a stray byte, the noncharacter the ledger's form uses as its mark, and valid UTF-8.
ODD = [b"caf\xe9.jpg", b"\xff\xfe-scan.jpg", "mark\uffff0041.jpg".encode(), "café.jpg".encode()]


def _photo(folder: Path, name: bytes, color: int) -> bytes:
    """A small JPEG at ``folder``/``name`` (a name of any bytes); returns its path's bytes."""
    path = os.path.join(os.fsencode(folder), name)
    Image.new("RGB", (40, 30), (color, 90, 160)).save(os.fsdecode(path), "JPEG")
    return path


def test_the_ledgers_form_keeps_any_name_and_leaves_valid_text_as_it_is() -> None:
    for raw in [*ODD, b"\x80", "\uffff".encode(), b"plain.jpg", "日本.jpg".encode()]:
        name = os.fsdecode(raw)
        form = stored(name)
        form.encode("utf-8")  # what either driver writes
        assert unstored(form) == name and os.fsencode(unstored(form)) == raw
        shown(name).encode("utf-8")
    assert stored("café.jpg") == "café.jpg" and stored("/a/b.jpg") == "/a/b.jpg"
    assert shown(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    # Made character by character: a folder's form is a prefix of its photos' forms.
    folder = os.fsdecode(b"/photos/r\xe9sum\xe9/")
    assert stored(folder + "a.jpg").startswith(stored(folder))


def test_a_hint_names_the_file_by_its_bytes_when_pasted_into_a_shell(tmp_path: Path) -> None:
    """``$'caf\\xe9.jpg'`` for a name that is not UTF-8: bash gives back the name's bytes."""
    for raw in [*ODD, b"it's a \\ name \xe9.jpg", b"plain name.jpg"]:
        word = shell_quoted(os.fsdecode(raw))
        word.encode("utf-8")
        printed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True)
        assert printed.stdout == raw, word
    assert shell_join(["aihd", "reorder", os.fsdecode(b"/p/caf\xe9.jpg")]) == (
        "aihd reorder $'/p/caf\\xe9.jpg'"
    )


def test_every_hint_is_quoted_by_filenames_never_by_shlex_alone() -> None:
    """shlex.quote gives a name that is not UTF-8 as text no shell turns back into its bytes:
    hints quote with pipeline.filenames (``$'caf\\xe9.jpg'``), the one module using shlex."""
    package = Path(__file__).resolve().parent.parent / "pipeline"
    using = sorted(
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if "shlex" in p.read_text(encoding="utf-8")
    )
    assert using == ["filenames.py"]


@pytest.mark.slow  # seven photos run, collected, run again and shown by four commands
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_photos_named_in_any_bytes_are_ordered_once_collected_and_shown_escaped(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)  # collect polls after the eta
    inside = tmp_path / "inside"
    for n in range(2):
        photo_factory(inside, f"p{n}.jpg")
    odd = [_photo(inside, name, 30 * n) for n, name in enumerate(ODD)]
    # A folder whose own name is not UTF-8, found by a glob, and a broken file named so.
    listing = os.path.join(os.fsencode(tmp_path / "listings"), b"r\xe9sum\xe9")
    os.makedirs(listing)
    odd.append(_photo(Path(os.fsdecode(listing)), b"salle.jpg", 200))
    broken = os.path.join(os.fsencode(inside), b"bad\xff.jpg")
    Path(os.fsdecode(broken)).write_bytes(b"not an image at all")
    ledger = "" if store == "sqlite" else request.getfixturevalue("pg_url")
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", []), "listings/*": ("indoor", [])}, ledger=ledger
    )
    log = tmp_path / "run.log"

    plan = aihd(["plan", str(manifest)], sandbox)
    assert plan.returncode == 0, plan.stderr
    assert "7 orders" in plan.stdout
    assert "inside/bad\\xff.jpg: not a JPEG" in plan.stdout

    done = aihd(["run", str(manifest), *FAST, "--collect", "--log-file", str(log)], sandbox)
    assert done.returncode == 1, done.stderr  # the broken file, reported; the rest ordered
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
    assert "bad\\xff.jpg" in done.stdout  # the summary's failure, escaped
    assert "bad\\xff.jpg: not a JPEG" in log.read_text(encoding="utf-8")
    stats = sandbox.stats()
    assert sorted(stats.charges.values()) == [1] * 7

    opened = open_ledger(
        request.getfixturevalue("pg_url") if ledger else tmp_path / "photos.ledger.sqlite"
    )
    try:
        rows = {os.fsencode(r.path): r for r in opened.photos()}
    finally:
        opened.close()
    # Byte for byte: the ledger names each file as the disk does.
    for path in odd:
        assert rows[path].state is State.COMPLETED, rows[path]
        (result,) = rows[path].output_paths
        assert Path(result).is_file()
    assert rows[broken].state is State.FAILED
    assert os.fsencode(rows[odd[-1]].folder).endswith(b"listings/r\xe9sum\xe9")
    # Results are named as shown: escaped, valid UTF-8 (a web upload form takes them).
    results = {Path(p).name for r in rows.values() for p in r.output_paths}
    assert {"caf\\xe9.jpg", "\\xff\\xfe-scan.jpg", "café.jpg", "salle.jpg"} <= results
    if not ledger:
        # Valid UTF-8 is stored as it always was; the rest in the ledger's form.
        with sqlite3.connect(tmp_path / "photos.ledger.sqlite") as conn:
            names = {r[0].rsplit("/", 1)[1] for r in conn.execute("SELECT path FROM photos")}
        assert {"café.jpg", "caf\uffffdce9.jpg", "mark\uffffffff0041.jpg"} <= names

    again = aihd(["run", str(manifest), *FAST, "--json"], sandbox)
    assert again.returncode == 0, again.stderr  # the broken file was reported by the first
    assert json.loads(again.stdout)["orders_spent"] == 0
    assert sorted(sandbox.stats().charges.values()) == [1] * 7
    assert "0 orders" in aihd(["plan", str(manifest)], sandbox).stdout

    status = aihd(["status", str(manifest)], None)
    assert status.returncode == 0, status.stderr
    assert "listings/r\\xe9sum\\xe9" in status.stdout
    failed = aihd(["status", str(manifest), "--failed"], None)
    assert failed.returncode == 0, failed.stderr
    assert "inside/bad\\xff.jpg: not a JPEG" in failed.stdout
    export = aihd(["export", str(manifest), "--format", "csv"], None)
    assert export.returncode == 0, export.stderr
    assert "inside/caf\\xe9.jpg," in export.stdout and "Traceback" not in export.stderr
    review = aihd(["review", str(manifest)], None)
    assert review.returncode == 0, review.stderr
    page = (tmp_path / "review" / "data.js").read_text(encoding="utf-8")
    assert '"name": "caf\\\\xe9.jpg"' in page and "caf%E9.jpg" in page


def test_ignore_takes_a_name_that_is_not_utf8(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """`aihd ignore` given the name's own bytes: the next run leaves exactly that file out."""
    inside = tmp_path / "inside"
    photo_factory(inside, "p0.jpg")
    odd = _photo(inside, b"caf\xe9.jpg", 10)
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["plan", str(manifest)], sandbox).returncode == 0  # no ledger yet: run first
    assert aihd(["run", str(manifest), *FAST, "--max-orders", "0"], sandbox).returncode == 4
    done = aihd(["ignore", str(manifest), os.fsdecode(odd)], None)
    assert done.returncode == 0, done.stderr
    run = aihd(["run", str(manifest), *FAST], sandbox)
    assert run.returncode == 0, run.stderr
    assert len(sandbox.stats().charges) == 1


def _sha256_of(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow  # ordered, collected, reviewed on the page and the desk, delivered, exported
def test_a_name_not_utf8_is_reviewed_on_the_page_and_the_desk_delivered_and_exported(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """``caf\\xe9.jpg`` in one listing, a listing folder ``r\\xe9sum\\xe9``: every command
    after the order takes them, shows them escaped, and hints name them by their bytes;
    nothing is charged again and no original changes."""
    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)
    oak = tmp_path / "listings" / "12-oak-st" / "inside"
    odd_listing = tmp_path / "listings" / os.fsdecode(b"r\xe9sum\xe9") / "inside"
    cafe = photo_factory(oak, os.fsdecode(b"caf\xe9.jpg"), size=(160, 120))
    plain = photo_factory(oak, "p0.jpg", size=(160, 120))
    salle = photo_factory(odd_listing, "salle.jpg", size=(160, 120))
    before = _sha256_of([cafe, plain, salle])
    manifest = write_manifest(tmp_path, {"listings/*/inside": ("indoor", [])})
    done = aihd(["run", str(manifest), *FAST, "--collect"], sandbox)
    assert done.returncode == 0, done.stderr
    assert sorted(sandbox.stats().charges.values()) == [1] * 3
    ids = {Path(r.path).name: r.id for r in ledger_rows(manifest)}

    # The static page: names escaped, the re-order hint a command that works when pasted.
    page = aihd(["review", str(manifest)], None)
    assert page.returncode == 0, page.stderr
    script = (tmp_path / "review" / "data.js").read_bytes().decode("utf-8")
    assert '"name": "caf\\\\xe9.jpg"' in script and '"name": "r\\\\xe9sum\\\\xe9"' in script
    assert "$'" + str(oak) + "/caf\\\\xe9.jpg'" in script  # the reorder_command's word
    (tmp_path / "review" / "index.html").read_bytes().decode("utf-8")
    # Its export names the photo as the page showed it: `review --apply` takes it.
    exported = tmp_path / "aihd-decisions.json"
    exported.write_text(
        json.dumps(
            {
                "format": DECISIONS_FORMAT,
                "decisions": [
                    {
                        "photo_id": ids[cafe.name],
                        "path": shown(str(cafe)),
                        "sha256": before[cafe],
                        "decision": "rejected",
                        "reason": "too dark",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    applied = aihd(["review", str(manifest), "--apply", str(exported)], None)
    assert applied.returncode == 0, applied.stderr
    assert "recorded 0 approved, 1 rejected" in applied.stdout
    # And `aihd approve` takes the name's own bytes, as a shell passes them.
    approved = aihd(["approve", str(manifest), str(cafe)], None)
    assert approved.returncode == 0, approved.stderr

    # The desk: names escaped, images served, decisions recorded, a listing delivered.
    with served_desk(manifest) as desk:
        session = desk.log_in()
        state = session.state()
        photos = {p["name"]: p for p in state["photos"]}  # type: ignore[union-attr]
        assert {"caf\\xe9.jpg", "p0.jpg", "salle.jpg"} == set(photos)
        assert photos["caf\\xe9.jpg"]["path"] == shown(str(cafe))
        assert photos["caf\\xe9.jpg"]["decision"] == "approved"
        keys = {entry["name"]: entry["key"] for entry in state["listings"]}  # type: ignore[union-attr]
        assert set(keys) == {"12-oak-st", "r\\xe9sum\\xe9"}
        for side in ("before", "after"):
            image = session.get(f"/review/photos/{ids[cafe.name]}/{side}/thumb")
            assert image.status == 200 and image.body[:2] == b"\xff\xd8", image.text
        again = session.post("/review/api/reorder", {"photo_id": ids[cafe.name]})
        assert again.status == 200, again.text
        assert "$'" in again.json()["command"]  # type: ignore[index]
        decided = session.post(
            "/review/api/decisions",
            {"photo_ids": [ids["p0.jpg"], ids["salle.jpg"]], "decision": "approved"},
        )
        assert decided.status == 200, decided.text
        delivered = session.post("/review/api/deliver", {"listing": keys["r\\xe9sum\\xe9"]})
        assert delivered.status == 200, delivered.text
        assert delivered.json()["delivered"] == [  # type: ignore[index]
            {"into": str(tmp_path / "delivery" / "r-sum"), "photos": 1}
        ]
    assert not [line for line in desk.stderr_lines if "Traceback" in line]

    done = aihd(["deliver", str(manifest)], None)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    folder = tmp_path / "delivery" / "12-oak-st"
    assert sorted(p.name for p in folder.iterdir()) == ["01-caf.jpg", "02-p0.jpg", "disclosure.csv"]
    disclosure = (folder / "disclosure.csv").read_bytes().decode("utf-8")
    assert "01-caf.jpg" in disclosure and str(tmp_path) not in disclosure
    for delivered_file in folder.glob("*.jpg"):
        with Image.open(delivered_file) as image:
            assert image.format == "JPEG"
    summary = aihd(["deliver", str(manifest), "--json", "--dry-run"], None)
    assert summary.returncode == 0, summary.stderr
    listed = {entry["listing"] for entry in json.loads(summary.stdout)["listings"]}
    assert listed == {"listings/12-oak-st", "listings/r\\xe9sum\\xe9"}

    for form in ("csv", "jsonl"):
        export = aihd(["export", str(manifest), "--format", form], None)
        assert export.returncode == 0, export.stderr
        assert "caf\\xe9.jpg" in export.stdout.replace("\\\\", "\\")
    assert _sha256_of([cafe, plain, salle]) == before
    assert sorted(sandbox.stats().charges.values()) == [1] * 3
