"""Approve / reject: a person's decisions on completed photos, recorded in the ledger.

Decisions come from ``aihd approve`` / ``aihd reject`` (photo paths or a folder) or from the file
a review page exports (``aihd review MANIFEST --apply FILE``): a static page cannot write the
ledger. Only a completed photo can be decided on. A rejected photo is never ordered again by
itself: the explicit ``aihd reorder MANIFEST PATH... --yes`` does that, and spends a credit.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.filenames import shell_join, shell_quoted, shown
from pipeline.files import open_regular
from pipeline.ledger import Decision, Ledger, PhotoRow, State
from pipeline.manifest.folders import folder_matches
from pipeline.manifest.loader import Manifest

__all__ = [
    "DECISIONS_FORMAT",
    "REASON_MAX_CHARS",
    "FileDecision",
    "apply_decisions",
    "clean_reason",
    "decisions_document",
    "manifest_rows",
    "read_decisions_file",
    "record_decision",
    "reorder_command",
    "select_photos",
]

DECISIONS_FORMAT = "aihd-review-decisions"
REASON_MAX_CHARS = 300  # a rejection's reason: a sentence, not a letter


@dataclass(frozen=True, slots=True)
class FileDecision:
    """One entry of an exported decisions file."""

    photo_id: int
    path: str
    sha256: str
    decision: Decision
    reason: str | None = None


def manifest_rows(manifest: Manifest, ledger: Ledger) -> list[PhotoRow]:
    """The ledger's current photos in this manifest's folders (the account's ledger holds
    other manifests' photos too)."""
    return ledger.photos(scope=[str(folder.path) for folder in manifest.folders])


def select_photos(
    manifest: Manifest, rows: Sequence[PhotoRow], paths: Sequence[Path], folders: Sequence[str]
) -> list[PhotoRow]:
    """The completed photos named by path (original or result) or by manifest folders
    (``--folder``, repeatable: a folder's name or path, or a glob of names, as ``run`` takes)."""
    if folders:
        return _folder_photos(manifest, rows, folders)
    by_path: dict[str, PhotoRow] = {}
    for row in rows:
        by_path[row.path] = row
        for output in row.output_paths:
            by_path.setdefault(output, row)
    chosen: dict[int, PhotoRow] = {}
    for given in paths:
        found = by_path.get(str(given.expanduser().resolve()))
        if found is None:
            raise UsageError(
                f"{given}: not a photo of {manifest.path.name} in its ledger; give the path of "
                "a photo (or of its result) from one of the manifest's folders"
            )
        row = found
        if row.state is not State.COMPLETED:
            raise UsageError(
                f"{given}: is {row.state.value}, not completed: only a collected result can be "
                f"approved or rejected (first `aihd collect {shell_quoted(str(manifest.path))}`)"
            )
        chosen[row.id] = row
    return list(chosen.values())


def _folder_photos(
    manifest: Manifest, rows: Sequence[PhotoRow], patterns: Sequence[str]
) -> list[PhotoRow]:
    names: set[str] = set()
    for pattern in patterns:
        resolved = str(Path(pattern).expanduser().resolve())
        matched = {
            spec.name
            for spec in manifest.folders
            if folder_matches(spec.name, [pattern.rstrip("/\\") or pattern])
            or resolved == str(spec.path)
            or str(spec.path).startswith(resolved.rstrip("/") + "/")
        }
        if not matched:
            known = ", ".join(spec.name for spec in manifest.folders[:20]) or "none"
            raise UsageError(
                f"--folder {pattern}: matches none of the folders of {manifest.path.name} ({known})"
            )
        names |= matched
    return [r for r in rows if r.folder in names and r.state is State.COMPLETED]


def reorder_command(manifest: Manifest, paths: Sequence[str]) -> str:
    """The command that orders these photos again (1 credit each), ready to paste."""
    return shell_join(["aihd", "reorder", str(manifest.path), *paths, "--yes"])


def clean_reason(text: object) -> str | None:
    """A rejection's reason as kept: one line of printable text, at most REASON_MAX_CHARS;
    None for none. Anything else than text is a UsageError."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise UsageError("a reason must be text")
    printable = "".join(
        " " if unicodedata.category(c)[0] in "CZ" else c for c in text
    )  # control characters, line breaks and odd spaces become plain spaces
    words = " ".join(printable.split())
    return words[:REASON_MAX_CHARS] or None


def record_decision(
    ledger: Ledger, photos: Sequence[PhotoRow], decision: Decision, source: str
) -> int:
    """Record the decision on each photo; return how many were recorded."""
    return ledger.record_reviews([p.id for p in photos], decision, source)


def decisions_document(manifest: Manifest, decisions: Sequence[FileDecision]) -> str:
    """The JSON a review page exports (the page builds the same shape in JavaScript)."""
    return json.dumps(
        {
            "format": DECISIONS_FORMAT,
            "version": 1,
            "manifest": str(manifest.path),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "decisions": [
                {
                    "photo_id": d.photo_id,
                    "path": d.path,
                    "sha256": d.sha256,
                    "decision": d.decision,
                    **({"reason": d.reason} if d.reason else {}),
                }
                for d in decisions
            ],
        },
        indent=1,
    )


def read_decisions_file(path: Path) -> list[FileDecision]:
    """Parse an exported decisions file; a bad one is a UsageError naming file and entry."""
    try:
        # Regular files only: a FIFO given here would wait for a writer.
        with open_regular(path.expanduser()) as stream:
            document = json.loads(stream.read().decode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the decisions file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a decisions file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}:{exc.lineno}: not JSON ({exc.msg}); use the file the review page's "
            "'Export decisions' button saved"
        ) from None
    if not isinstance(document, dict) or document.get("format") != DECISIONS_FORMAT:
        raise UsageError(
            f'{path}: not an aihd decisions file (no "format": "{DECISIONS_FORMAT}"); use '
            "the file the review page's 'Export decisions' button saved"
        )
    entries = document.get("decisions")
    if not isinstance(entries, list):
        raise UsageError(f'{path}: "decisions" must be a list')
    return [_entry(path, index, entry) for index, entry in enumerate(entries)]


def _entry(path: Path, index: int, entry: object) -> FileDecision:
    where = f"{path}: decisions[{index}]"
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: must be an object with photo_id, path, sha256, decision")
    photo_id, photo_path = entry.get("photo_id"), entry.get("path")
    sha256, decision = entry.get("sha256"), entry.get("decision")
    if isinstance(photo_id, bool) or not isinstance(photo_id, int):
        raise UsageError(f"{where}: photo_id must be a whole number")
    if not isinstance(photo_path, str) or not isinstance(sha256, str):
        raise UsageError(f"{where}: path and sha256 must be text")
    if decision not in {d.value for d in Decision}:
        raise UsageError(f'{where}: decision must be "approved" or "rejected"')
    reason = entry.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise UsageError(f"{where}: reason must be text")
    said = Decision(decision)
    why = clean_reason(reason) if said is Decision.REJECTED else None  # only a "no" has a why
    return FileDecision(photo_id, photo_path, sha256, said, why)


def apply_decisions(
    ledger: Ledger, rows: Sequence[PhotoRow], decisions: Sequence[FileDecision], source: str
) -> dict[Decision, int]:
    """Record a file's decisions, after checking every one names this ledger's completed photo."""
    by_id = {row.id: row for row in rows}
    for index, entry in enumerate(decisions):
        row = by_id.get(entry.photo_id)
        # The page shows a name that is not UTF-8 escaped (shown): its export names it so.
        named = row is not None and entry.path in (row.path, shown(row.path))
        if row is None or not named or row.sha256 != entry.sha256:
            raise UsageError(
                f"{source}: decisions[{index}]: {entry.path} is not photo {entry.photo_id} of "
                "this manifest's ledger (exported from another manifest or ledger, or the photo "
                "changed since): write the review page again and decide there"
            )
        if row.state is not State.COMPLETED:
            raise UsageError(
                f"{source}: decisions[{index}]: {entry.path} is {row.state.value}, not completed"
            )
    # The last word on each photo counts; photos said the same of, for the same reason, are
    # recorded together.
    latest = {d.photo_id: (d.decision, d.reason) for d in decisions}
    together: dict[tuple[Decision, str | None], list[int]] = {}
    for photo_id, said in latest.items():
        together.setdefault(said, []).append(photo_id)
    counts = dict.fromkeys(Decision, 0)
    with ledger.grouped():
        for (decision, reason), ids in together.items():
            counts[decision] += ledger.record_reviews(ids, decision, source, reason)
    return counts
