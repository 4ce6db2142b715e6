"""``PhotoApi``: the one interface the runner, plan and collect use, whichever API version.

A photo's ``OrderSpec`` (and, for reads, the ledger's ``service`` of its row) says which version
it goes through; the runner never asks. The calls, per photo:

- ``send_photo``: the upload (v1 ``POST /v1/order/image``; v3 the listing's project, found or
  created, then ``POST /v3/order``), free: returns the order id;
- ``spend``: the call that spends the credit (v1 ``POST /v1/order``; v3 ``POST /v3/process``):
  it awaits ``before_send`` (the caller commits its intent there, and may refuse by raising)
  once the request can leave at once (v3: its process slot is free), then sends it; a lost
  answer raises ``OutcomeUnknown``;
- ``order``: the order's details, which settle a lost answer and give the results;
- ``fetch_result``: download one result (v3: a link that expired is read afresh).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from yarl import URL

from pipeline.api.records import GeneratedImage, OrderDetails, OrderSpec, SubmittedOrder
from pipeline.api.transport import Digest

__all__ = ["PhotoApi"]


class PhotoApi(Protocol):
    """What a run does with the API, one photo at a time."""

    base_url: URL

    async def send_photo(
        self, photo: str | Path, spec: OrderSpec, *, sent: Digest | None = None
    ) -> str: ...

    async def spend(
        self,
        order_id: str,
        spec: OrderSpec,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> SubmittedOrder: ...

    async def order(self, order_id: str, service: str) -> OrderDetails: ...

    async def fetch_result(self, image: GeneratedImage, dest: Path, service: str) -> int: ...

    def paces_uploads(self, service: str) -> bool:
        """True when an upload may count in the API's window (v3: the limit may count orders
        rather than processes), so it must wait for its own slot, not run ahead of it."""
        ...
