"""A listing enhanced for real against a sandbox: where review and deliver start from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from pipeline import api
from pipeline.ledger import FoundPhoto, PhotoOptions, PhotoRow, State, open_ledger
from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd, ledger_rows

PhotoFactory = Callable[..., Path]
INSIDE = "listings/12-oak-st/inside"
OUTSIDE = "listings/12-oak-st/outside"


def collected_listing(
    root: Path, sandbox: Sandbox, photo_factory: PhotoFactory, *, collect: bool = True
) -> Path:
    """Interior folder written first, exterior second; every photo ordered (and collected)."""
    for name in ("kitchen", "den", "bath"):
        photo_factory(root / INSIDE, f"{name}.jpg", size=(160, 120))
    for name in ("front", "yard"):
        photo_factory(root / OUTSIDE, f"{name}.jpg", size=(160, 120))
    manifest = root / "listing.yaml"
    manifest.write_text(
        "version: 1\n"
        "ledger: listing.ledger.sqlite\n"  # beside it, where these tests read it
        "rate_limit: {orders: 1000, per_seconds: 600}\n"
        "retry: {attempts: 5, max_backoff: 0.2}\n"
        "folders:\n"
        f"  - path: {INSIDE}\n"
        "    space: indoor\n"
        '    enhancements: ["Add Fire to Fireplace"]\n'
        f"  - path: {OUTSIDE}\n"
        "    space: outdoor\n"
    )
    args = ["run", str(manifest), *FAST, *(["--collect"] if collect else [])]
    done = aihd(args, sandbox)
    assert done.returncode == 0, done.stderr
    wanted = State.COMPLETED if collect else State.SUBMITTED
    assert {r.state for r in ledger_rows(manifest)} == {wanted}
    return manifest


def row_named(manifest: Path, name: str) -> PhotoRow:
    (row,) = [r for r in ledger_rows(manifest) if Path(r.path).name == name]
    return row


def decisions_by_name(manifest: Path) -> dict[str, str]:
    """The ledger's recorded decisions, by photo file name."""
    ledger = open_ledger(manifest.with_name(manifest.stem + ".ledger.sqlite"))
    try:
        names = {r.id: Path(r.path).name for r in ledger.photos()}
        return {names[i]: review.decision.value for i, review in ledger.reviews().items()}
    finally:
        ledger.close()


def ledger_listing(root: Path, count: int) -> Path:
    """``count`` completed photos put in a ledger directly, with results made by Pillow.

    For page tests that need more photos than a sandbox run should spend time on; what the
    page shows of them is the same as of collected ones.
    """
    folder = "listings/1-main-st/inside"
    (root / folder).mkdir(parents=True)
    (root / "enhanced" / folder).mkdir(parents=True)
    manifest = root / "many.yaml"
    manifest.write_text(f"version: 1\nledger: many.ledger.sqlite\nfolders:\n  - path: {folder}\n")
    ledger = open_ledger(root / "many.ledger.sqlite")
    options = PhotoOptions(api.SERVICE, "space-ie-indoor", ())
    try:
        with ledger.grouped():
            for n in range(count):
                original = root / folder / f"room-{n:03d}.jpg"
                result = root / "enhanced" / folder / original.name
                Image.new("RGB", (120, 90), (n * 5 % 250, 90, 140)).save(original)
                Image.new("RGB", (120, 90), (n * 5 % 250, 140, 90)).save(result)
                st, data = original.stat(), original.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                found = FoundPhoto(
                    str(original), folder, st.st_size, st.st_mtime_ns, digest, options
                )
                (row,) = ledger.record_found([found])
                ledger.mark_uploaded(row.id, f"order-{n}")
                ledger.mark_submitting(row.id)
                ledger.mark_submitted(row.id, f"image-{n}", 30)
                ledger.mark_completed(row.id, [f"http://results/{n}"], [str(result)])
    finally:
        ledger.close()
    return manifest
