"""``aihd status``: where every photo of a ledger stands, per folder, and how the last run ended."""

from __future__ import annotations

__all__ = ["render_status", "status_json"]

import json
from collections.abc import Callable, Sequence

from pipeline.columns import pad, width
from pipeline.filenames import shell_join, shown
from pipeline.ledger import Ledger, PhotoRow, State

_COLUMNS = (
    State.PENDING,
    State.UPLOADED,
    State.SUBMITTING,
    State.UNKNOWN,
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
    command = shell_join(["aihd", "status", target]) if target else ""
    if failed:
        return _render_failed(ledger, chosen, scope, target)
    by_folder = {
        shown(f): c
        for f, c in ledger.counts_by_folder(scope).items()
        if chosen is None or chosen(f)
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
    unsettled = _unsettled(ledger, scope)
    lines.append(
        f"orders spent: {charged + len(unsettled)} (charged by the API: {charged}; may have "
        f"been charged, outcome unknown: {len(unsettled)})"
    )
    if unsettled:
        lines.append(
            f"  {len(unsettled)} photos held as unknown: their order POST may have been charged; "
            "never ordered again by itself, a run reads their orders' details and settles them"
        )
    if charged_failed:
        lines.append(
            f"failed after being charged: {charged_failed} (their results are retried by "
            f"{_collect_hint(target)}; {_reorder_hint(ledger, scope, target)})"
        )
    if (totals[State.FAILED] or unsettled) and command:
        lines.append(f"`{command} --failed` lists the failed and unknown photos with their reasons")
    if upscales := _upscale_counts(ledger, scope):
        counted = ", ".join(f"{n} {state}" for state, n in upscales.items())
        lines.append(f"upscales (aihd serve): {counted}")
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
    """``status --failed``: each failed photo and why, then each photo held as unknown (its
    order may have been charged); with none, one line that says so."""
    rows = [
        r for r in ledger.photos([State.FAILED], scope=scope) if chosen is None or chosen(r.folder)
    ]
    held = [r for r in _unsettled(ledger, scope) if chosen is None or chosen(r.folder)]
    where = "these folders" if chosen is not None else "this manifest" if scope else "the ledger"
    if not rows and not held:
        return f"no failed photos in {where} (ledger {ledger.path})"
    lines = [f"failed: {shown(row.path)}: {row.error or 'unknown'}" for row in rows]
    lines += [f"unknown: {shown(row.path)}: {row.error or 'outcome unknown'}" for row in held]
    lines.append(f"{len(rows)} failed photos in {where} (ledger {ledger.path})")
    if held:
        lines.append(
            f"{len(held)} photos held as unknown: their order may have been charged; a run "
            "reads their orders' details and settles them, never ordering them again blindly"
        )
    if any(row.charged for row in rows):
        lines.append(
            f"those charged are retried as results by {_collect_hint(target)}; "
            f"{_reorder_hint(ledger, scope, target)}"
        )
    return "\n".join(lines)


def _collect_hint(target: str) -> str:
    return f"`{shell_join(['aihd', 'collect', target])}`" if target else "collect"


def _reorder_hint(ledger: Ledger, scope: Sequence[str] | None, target: str) -> str:
    """How to order a charged, failed photo again, with one of them as the example."""
    charged = [r for r in ledger.photos([State.FAILED], scope=scope) if r.charged]
    if not target or not charged:
        return "the reorder command orders one again, at a cost"
    command = shell_join(["aihd", "reorder", target, charged[0].path, "--yes"])
    return f"`{command}` orders one again, at a cost"


def status_json(ledger: Ledger, scope: Sequence[str] | None = None) -> str:
    """The same facts for machines: counts per folder and state, charges, failures, last run."""
    charged, charged_failed = ledger.charged_counts(scope)
    unsettled = _unsettled(ledger, scope)
    last = ledger.last_run()
    return json.dumps(
        {
            "folders": {
                shown(folder): {state.value: n for state, n in counts.items()}
                for folder, counts in sorted(ledger.counts_by_folder(scope).items())
            },
            "states": {state.value: n for state, n in ledger.counts(scope).items()},
            # Every order POST that may have charged: confirmed, or not settled either way.
            "orders_spent": charged + len(unsettled),
            "orders_charged": charged,
            "orders_unknown": len(unsettled),
            "failed_after_charge": charged_failed,
            "upscales": _upscale_counts(ledger, scope),
            "failures": [
                {"path": path, "error": error} for path, error in _failures(ledger, scope)
            ],
            "unknown": [
                {
                    "path": shown(row.path),
                    "state": row.state.value,
                    "order_id": row.order_id,
                    "error": row.error or "outcome unknown",
                }
                for row in unsettled
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


def _unsettled(ledger: Ledger, scope: Sequence[str] | None) -> list[PhotoRow]:
    """Photos whose order POST may have charged, not confirmed either way (unknown, or an
    intent a run left in flight), whichever their file is now."""
    states = [State.UNKNOWN, State.SUBMITTING]
    return [r for r in ledger.photos(states, current_only=False, scope=scope) if not r.charged]


def _failures(ledger: Ledger, scope: Sequence[str] | None) -> list[tuple[str, str]]:
    rows = ledger.photos([State.FAILED], scope=scope)
    return [(shown(row.path), row.error or "unknown") for row in rows]
