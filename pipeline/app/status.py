"""``aihd status``: where every photo of a ledger stands, per folder, and how the last run ended."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence

from pipeline.columns import pad, width
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


def render_status(
    ledger: Ledger,
    chosen: Callable[[str], bool] | None = None,
    *,
    failed: bool = False,
    scope: Sequence[str] | None = None,
    target: str = "",
) -> str:
    """Folders in name order (as `aihd plan` lists them); ``chosen``: --folder's filter;
    ``scope``: only the photos in these folders (a manifest's); None: the whole ledger.
    ``target``: the manifest or ledger as given, for the hints (commands ready to paste);
    ``failed``: only the failed photos, each with its reason."""
    command = shlex.join(["aihd", "status", target]) if target else ""
    if failed:
        return _render_failed(ledger, chosen, scope, target)
    by_folder = {
        f: c for f, c in ledger.counts_by_folder(scope).items() if chosen is None or chosen(f)
    }
    cells = max([len("folder"), *(width(f) for f in by_folder)])
    header = f"{pad('folder', cells)}  " + "  ".join(f"{s.value:>10}" for s in _COLUMNS)
    lines = [f"ledger: {ledger.path}", header]
    totals = dict.fromkeys(_COLUMNS, 0)
    for folder in sorted(by_folder):
        counts = by_folder[folder]
        for state in _COLUMNS:
            totals[state] += counts.get(state, 0)
        row = "  ".join(f"{counts.get(s, 0):>10}" for s in _COLUMNS)
        lines.append(f"{pad(folder, cells)}  {row}")
    lines.append(f"{pad('total', cells)}  " + "  ".join(f"{totals[s]:>10}" for s in _COLUMNS))
    charged, charged_failed = ledger.charged_counts(scope)
    lines.append(f"orders spent (charged by the API): {charged}")
    if totals[State.SUBMITTING]:
        lines.append(
            f"  and up to {totals[State.SUBMITTING]} more: orders whose answer was lost, "
            "settled by the next run from the order's details"
        )
    if charged_failed:
        lines.append(
            f"failed after being charged: {charged_failed} (their results are retried by "
            f"{_collect_hint(target)}; {_reorder_hint(ledger, scope, target)})"
        )
    if totals[State.FAILED] and command:
        lines.append(f"`{command} --failed` lists the failed photos with their reasons")
    if upscales := _upscale_counts(ledger, scope):
        shown = ", ".join(f"{n} {state}" for state, n in upscales.items())
        lines.append(f"upscales (aihd serve): {shown}")
    if ignored := len(ledger.ignored_paths()) + len(ledger.ignored_contents()):
        lines.append(f"ignored (aihd ignore): {ignored} paths, left out of every run")
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


def _render_failed(
    ledger: Ledger,
    chosen: Callable[[str], bool] | None,
    scope: Sequence[str] | None,
    target: str,
) -> str:
    """``status --failed``: each failed photo and why; with none, one line that says so."""
    rows = [
        r for r in ledger.photos([State.FAILED], scope=scope) if chosen is None or chosen(r.folder)
    ]
    where = "these folders" if chosen is not None else "this manifest" if scope else "the ledger"
    if not rows:
        return f"no failed photos in {where} (ledger {ledger.path})"
    lines = [f"failed: {row.path}: {row.error or 'unknown'}" for row in rows]
    lines.append(f"{len(rows)} failed photos in {where} (ledger {ledger.path})")
    if any(row.charged for row in rows):
        lines.append(
            f"those charged are retried as results by {_collect_hint(target)}; "
            f"{_reorder_hint(ledger, scope, target)}"
        )
    return "\n".join(lines)


def _collect_hint(target: str) -> str:
    return f"`{shlex.join(['aihd', 'collect', target])}`" if target else "collect"


def _reorder_hint(ledger: Ledger, scope: Sequence[str] | None, target: str) -> str:
    """How to order a charged, failed photo again, with one of them as the example."""
    charged = [r for r in ledger.photos([State.FAILED], scope=scope) if r.charged]
    if not target or not charged:
        return "the reorder command orders one again, at a cost"
    command = shlex.join(["aihd", "reorder", target, charged[0].path, "--yes"])
    return f"`{command}` orders one again, at a cost"


def status_json(ledger: Ledger, scope: Sequence[str] | None = None) -> str:
    """The same facts for machines: counts per folder and state, charges, failures, last run."""
    charged, charged_failed = ledger.charged_counts(scope)
    last = ledger.last_run()
    return json.dumps(
        {
            "folders": {
                folder: {state.value: n for state, n in counts.items()}
                for folder, counts in sorted(ledger.counts_by_folder(scope).items())
            },
            "states": {state.value: n for state, n in ledger.counts(scope).items()},
            "orders_spent": charged,
            "failed_after_charge": charged_failed,
            "upscales": _upscale_counts(ledger, scope),
            "failures": [
                {"path": path, "error": error} for path, error in _failures(ledger, scope)
            ],
            "last_run": None
            if last is None
            else {
                "command": last.command,
                "started_at": last.started_at,
                "ended_at": last.ended_at,
                "outcome": last.outcome,
            },
        },
        indent=2,
    )


def _upscale_counts(ledger: Ledger, scope: Sequence[str] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for upscale in ledger.upscales(scope):
        counts[upscale.state] = counts.get(upscale.state, 0) + 1
    return dict(sorted(counts.items()))


def _failures(ledger: Ledger, scope: Sequence[str] | None) -> list[tuple[str, str]]:
    rows = ledger.photos([State.FAILED], scope=scope)
    return [(row.path, row.error or "unknown") for row in rows]
