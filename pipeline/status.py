"""``aihd status``: where every photo of a ledger stands, per folder, and how the last run ended."""

from __future__ import annotations

from collections.abc import Callable

from pipeline._text import pad, width
from pipeline.ledger import Ledger, State

_COLUMNS = (
    State.PENDING,
    State.UPLOADED,
    State.SUBMITTING,
    State.SUBMITTED,
    State.COMPLETED,
    State.DUPLICATE,
    State.FAILED,
)


def render_status(ledger: Ledger, chosen: Callable[[str], bool] | None = None) -> str:
    """Folders in name order (as `aihd plan` lists them); ``chosen``: --folder's filter."""
    by_folder = {f: c for f, c in ledger.counts_by_folder().items() if chosen is None or chosen(f)}
    cells = max([len("folder"), *(width(f) for f in by_folder)])
    header = f"{pad('folder', cells)}  " + "  ".join(f"{s.value:>10}" for s in _COLUMNS)
    lines = [header]
    totals = dict.fromkeys(_COLUMNS, 0)
    for folder in sorted(by_folder):
        counts = by_folder[folder]
        for state in _COLUMNS:
            totals[state] += counts.get(state, 0)
        row = "  ".join(f"{counts.get(s, 0):>10}" for s in _COLUMNS)
        lines.append(f"{pad(folder, cells)}  {row}")
    lines.append(f"{pad('total', cells)}  " + "  ".join(f"{totals[s]:>10}" for s in _COLUMNS))
    paid = totals[State.SUBMITTED] + totals[State.COMPLETED] + totals[State.SUBMITTING]
    lines.append(f"orders spent (submitted, completed or being checked): {paid}")
    if ignored := ledger.ignored_paths():
        lines.append(f"ignored (aihd ignore): {len(ignored)} paths, left out of every run")
    last = ledger.last_run()
    if last is None:
        lines.append("last run: none yet")
    else:
        ended = last.ended_at or "still running, or killed"
        lines.append(
            f"last run: {last.command}\n  started {last.started_at}, ended {ended}, "
            f"outcome {last.outcome or 'unknown'}"
        )
    return "\n".join(lines)
