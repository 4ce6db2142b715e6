"""A listing of every kind of photo, each enhanced with a different v1 toggle or v3 tool, put
in a ledger as collected and approved: where the delivery profile tests start from.

The kinds the sandbox never returns (it answers with JPEGs) are made here by Pillow: portrait,
EXIF-rotated, PNG with alpha, CMYK JPEG, 16-bit PNG, a 20000x200 panorama, a 1x1 image.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline import api
from pipeline.api.v3_slugs import build_spec, identity_parts
from pipeline.ledger import Decision, FoundPhoto, PhotoOptions, open_ledger
from tests.cli_helpers import aihd

EXIF_ORIENTATION = 0x0112
LISTING = "listings/7-ash"


def _v3(tool: str, **choices: str | list[str]) -> PhotoOptions:
    spec = build_spec(tool, **choices)  # type: ignore[arg-type]
    return PhotoOptions(spec.service, *identity_parts(spec))


def _v1(space: str, *toggles: str) -> PhotoOptions:
    # The ledger keeps v1 titles casefolded (part of a photo's identity).
    return PhotoOptions(api.SERVICE, f"space-ie-{space}", tuple(t.casefold() for t in toggles))


def _rotated(path: Path) -> None:
    """3000x2000 stored, shown 2000x3000: EXIF orientation 6."""
    image = Image.new("RGB", (3000, 2000), (90, 100, 110))
    image.paste((200, 200, 200), (0, 0, 3000, 200))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    image.save(path, "JPEG", exif=exif.tobytes())


def _alpha(path: Path) -> None:
    image = Image.new("RGBA", (800, 600), (20, 120, 20, 255))
    image.paste((0, 0, 0, 0), (0, 0, 400, 600))
    image.save(path, "PNG")


def _sixteen(path: Path) -> None:
    ramp = Image.linear_gradient("L").resize((1200, 900)).convert("I")
    ramp.point(lambda v: v * 257).convert("I;16").save(path, "PNG")


@dataclass(frozen=True, slots=True)
class Kind:
    """One photo of the test listing: its result's kind, how it was enhanced, and the words
    its disclosure row must hold."""

    stem: str
    part: str  # outside / inside
    suffix: str
    make: Callable[[Path], None]
    options: PhotoOptions
    altered: bool
    words: tuple[str, ...]
    wide: bool = False  # 20000x200: no profile that keeps the shape can hold it


KINDS = (
    # Exteriors first: an altered cover, then an exempt one.
    Kind("a-dusk", "outside", ".jpg", _rotated,
         _v3("day-to-dusk", sky="clear dusk", enhancements=["lawn touch up"]), True,
         ("Day to Dusk (daylight turned to dusk)", "Sky: Clear Dusk", "Lawn Touch-Up")),
    Kind("b-front", "outside", ".jpg",
         lambda p: Image.new("RGB", (1500, 2400), (120, 140, 160)).save(p, "JPEG"),
         _v1("outdoor"), False, ("exposure, colour, sharpness",)),
    Kind("c-alpha", "inside", ".png", _alpha, _v1("indoor", "Add Screen to TV"), True,
         ("Add Screen to TV", "exposure, colour, sharpness")),
    Kind("d-cmyk", "inside", ".jpg",
         lambda p: Image.new("CMYK", (2400, 1600), (0, 255, 255, 0)).save(p, "JPEG"),
         _v3("virtual-staging", room="bedroom", style="modern"), True,
         ("Virtual Staging (furniture added)", "Style: Modern")),
    Kind("e-sixteen", "inside", ".png", _sixteen, _v3("image-enhancement"), False,
         ("exposure, colour, sharpness",)),
    Kind("f-pano", "inside", ".jpg",
         lambda p: Image.new("RGB", (20000, 200), (60, 90, 60)).save(p, "JPEG"),
         _v3("item-removal"), True, ("Item Removal (furniture and clutter removed)",),
         wide=True),
    Kind("g-dot", "inside", ".png",
         lambda p: Image.new("RGB", (1, 1), (200, 60, 60)).save(p, "PNG"),
         _v1("indoor", "Remove Extra Objects"), True, ("Remove Extra Objects",)),
)  # fmt: skip


def make_listing(
    root: Path,
    kinds: Sequence[Kind] = KINDS,
    *,
    profiles: str = "",
    listing: str = LISTING,
    approve: bool = True,
) -> Path:
    """A manifest and its ledger: each kind's original in the listing's photo folders, its
    result under enhanced/, completed and (``approve``) approved. Adds to an existing one."""
    manifest = root / "ash.yaml"
    if not manifest.exists():
        manifest.write_text(
            "version: 1\nledger: ash.ledger.sqlite\nfolders:\n"
            "  - path: listings/*/outside\n    space: outdoor\n"
            "  - path: listings/*/inside\n" + profiles
        )
    ledger = open_ledger(root / "ash.ledger.sqlite")
    for part in ("outside", "inside"):
        (root / listing / part).mkdir(parents=True, exist_ok=True)
    try:
        for kind in kinds:
            folder = f"{listing}/{kind.part}"
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / "enhanced" / folder).mkdir(parents=True, exist_ok=True)
            original = root / folder / f"{kind.stem}.jpg"
            noise = os.urandom(64 * 48 * 3)
            Image.frombytes("RGB", (64, 48), noise).save(original, "JPEG")
            result = root / "enhanced" / folder / f"{kind.stem}{kind.suffix}"
            kind.make(result)
            st = original.stat()
            digest = hashlib.sha256(original.read_bytes()).hexdigest()
            found = FoundPhoto(str(original), folder, st.st_size, st.st_mtime_ns, digest,
                               kind.options)  # fmt: skip
            (row,) = ledger.record_found([found])
            ledger.mark_uploaded(row.id, f"order-{kind.stem}")
            ledger.mark_submitting(row.id)
            ledger.mark_submitted(row.id, f"image-{kind.stem}", 30)
            ledger.mark_completed(row.id, [f"http://results/{kind.stem}"], [str(result)])
            if approve:
                ledger.record_reviews([row.id], Decision.APPROVED, "test")
    finally:
        ledger.close()
    return manifest


def deliver_json(manifest: Path, *args: str) -> tuple[int, dict[str, object], str]:
    """``aihd deliver MANIFEST ARGS --json``: (exit code, its summary, stderr)."""
    done = aihd(["deliver", str(manifest), *args, "--json"], None, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, summary, done.stderr


def disclosure(folder: Path) -> list[dict[str, str]]:
    with (folder / "disclosure.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def hashes(*roots: Path) -> dict[str, str]:
    """Every file under these folders, by path: its sha256."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def kind_of(name: str) -> Kind:
    """The kind a delivered file name (03-c-alpha.jpg, 04-c-alpha-original.jpg) comes from."""
    stem = name.split("-", 1)[1].removesuffix(".jpg").removesuffix("-original")
    return next(k for k in KINDS if k.stem == stem)
