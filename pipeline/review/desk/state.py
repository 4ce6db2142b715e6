"""The desk's page state as JSON, each photo's text kept until its ledger row or decision
changes: a 2,000-photo page is read from the ledger afresh on each load, but only what changed
since is described and encoded again."""

from __future__ import annotations

import json

from pipeline.ledger import Ledger, PhotoRow, Review
from pipeline.review.desk.live import Snapshot
from pipeline.review.sheet import Sheet

__all__ = ["StateDocument"]

_Entry = tuple[int, PhotoRow, Review | None]
_TAIL = "null}"


class StateDocument:
    """Builds the state's JSON text (in the ledger worker's thread: one at a time)."""

    def __init__(self, sheet: Sheet) -> None:
        self._sheet = sheet
        self._texts: dict[int, tuple[_Entry, str]] = {}
        self._spelled: dict[str, str] = {}

    def text(self, ledger: Ledger, snapshot: Snapshot, **extra: object) -> str:
        spelled = ledger.titles()
        if spelled != self._spelled:  # a toggle spelled anew: every label may change
            self._texts.clear()
            self._spelled = spelled
        kept: dict[int, tuple[_Entry, str]] = {}
        photos = []
        for entry in snapshot.photos.values():
            m, row, review = entry
            known = self._texts.get(row.id)
            if known is None or known[0] != entry:
                known = (entry, json.dumps(self._sheet.photo(m, row, review, spelled)))
            kept[row.id] = known
            photos.append(known[1])
        self._texts = kept  # photos gone from the sheet are forgotten
        document = self._sheet.compose(ledger.path, [], spelled, **extra)
        document["progress"] = dict(snapshot.progress)
        del document["photos"]
        document["photos"] = None  # last, so its place is the text's very end
        head = json.dumps(document)
        assert head.endswith(_TAIL)
        return head[: -len(_TAIL)] + "[" + ",".join(photos) + "]}"
