"""The v3 listing projects' ids, kept in the account's ledger.

The v3 client asks a ``ProjectBook`` for a listing's project; the ordering layer hands it this
one, so the HTTP client never knows how (or that) ids are stored.
"""

from __future__ import annotations

from pipeline.ledger import Ledger

__all__ = ["LedgerProjects"]


class LedgerProjects:
    """The ledger as the v3 client's ``ProjectBook``, for one account."""

    def __init__(self, ledger: Ledger, account: str) -> None:
        self._ledger = ledger
        self._account = account

    def get(self, address: str) -> str | None:
        return self._ledger.v3_project(self._account, address)

    def put(self, address: str, project_id: str) -> None:
        self._ledger.save_v3_project(self._account, address, project_id)

    def replace(self, address: str, gone: str, project_id: str) -> str:
        return self._ledger.replace_v3_project(self._account, address, gone, project_id)
