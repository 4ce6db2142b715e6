"""``aihd status``: where every photo of a ledger stands, per folder, and how the last run ended."""

from __future__ import annotations

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


def render_status(ledger: Ledger) -> str:
    by_folder = ledger.counts_by_folder()
    width = max([len("folder"), *(len(f) for f in by_folder)])
    header = f"{'folder':<{width}}  " + "  ".join(f"{s.value:>10}" for s in _COLUMNS)
    lines = [header]
    totals = dict.fromkeys(_COLUMNS, 0)
    for folder in sorted(by_folder):
        counts = by_folder[folder]
        for state in _COLUMNS:
            totals[state] += counts.get(state, 0)
        cells = "  ".join(f"{counts.get(s, 0):>10}" for s in _COLUMNS)
        lines.append(f"{folder:<{width}}  {cells}")
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals[s]:>10}" for s in _COLUMNS))
    paid = totals[State.SUBMITTED] + totals[State.COMPLETED] + totals[State.SUBMITTING]
    lines.append(f"orders spent (submitted, completed or being checked): {paid}")
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
