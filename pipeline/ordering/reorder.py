"""``aihd reorder``: the one way to order a charged photo again, with its cost shown first."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.filenames import shown
from pipeline.ledger import Ledger, PhotoRow, State

_NOT_CHARGED = {
    State.PENDING: "not ordered yet: `aihd run` orders it",
    State.UPLOADED: "not ordered yet: `aihd run` orders it",
    State.SUBMITTING: "its order's outcome is being settled: run `aihd run` first",
}


def plan_reorder(ledger: Ledger, paths: Sequence[str]) -> tuple[list[str], list[int]]:
    """Lines that say what re-ordering each path would cost, and the photos it would clear."""
    by_path: dict[str, PhotoRow] = {row.path: row for row in ledger.photos()}
    lines: list[str] = []
    photo_ids: list[int] = []
    for path in paths:
        row = by_path.get(path)
        name = shown(path)
        if row is None:
            lines.append(f"{name}: not in this ledger (check the path)")
        elif row.state in _NOT_CHARGED:
            lines.append(f"{name}: {_NOT_CHARGED[row.state]}")
        else:
            # Failed ones too: an order whose outcome is unknown may have been charged.
            was = f"order {row.order_id}" if row.order_id else "a copy of a paid photo"
            lines.append(f"{name}: {row.state.value}, {was}: 1 more order")
            photo_ids.append(row.id)
    return lines, photo_ids
