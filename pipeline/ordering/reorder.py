"""``aihd reorder``: the one way to order a charged photo again, with its cost shown first."""

from __future__ import annotations

__all__ = ["plan_reorder"]

from collections.abc import Sequence

from pipeline.filenames import shown
from pipeline.ledger import Ledger, PhotoRow, State


def _not_charged(state: State, run: str) -> str | None:
    """Why a photo in ``state`` needs no re-order; ``run``: its manifest's run command."""
    how = f"`{run}`" if run else "the next run of its manifest"
    return {
        State.PENDING: f"not ordered yet: {how} orders it",
        State.UPLOADED: f"not ordered yet: {how} orders it",
        State.SUBMITTING: f"its order's outcome is being settled: {how} does it first",
    }.get(state)


def plan_reorder(
    ledger: Ledger, paths: Sequence[str], run: str = ""
) -> tuple[list[str], list[int]]:
    """Lines that say what re-ordering each path would cost, and the photos it would clear;
    ``run``: the command that runs the photos' manifest, for the hints ("" : none known)."""
    by_path: dict[str, PhotoRow] = {row.path: row for row in ledger.photos()}
    lines: list[str] = []
    photo_ids: list[int] = []
    for path in paths:
        row = by_path.get(path)
        name = shown(path)
        if row is None:
            lines.append(f"{name}: not in this ledger (check the path)")
        elif (why := _not_charged(row.state, run)) is not None:
            lines.append(f"{name}: {why}")
        else:
            # Failed ones too: an order whose outcome is unknown may have been charged.
            was = f"order {row.order_id}" if row.order_id else "a copy of a paid photo"
            lines.append(f"{name}: {row.state.value}, {was}: 1 more order")
            photo_ids.append(row.id)
    return lines, photo_ids
