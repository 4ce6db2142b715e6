"""Opens the clients a run needs: the seam above the interface and both versions.

``AnyVersion`` is a ``PhotoApi`` that sends each photo through the version its ``OrderSpec`` (or,
for reads, its ledger row's ``service``) names: an account's ledger may hold photos of both, and
``collect`` reads each with the API that ordered it. Both clients share one base URL and key.
"""

from __future__ import annotations

__all__ = ["API_VERSIONS", "AnyVersion"]

from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from yarl import URL

from pipeline.api.records import (
    GeneratedImage,
    OrderDetails,
    OrderSpec,
    SubmittedOrder,
    is_v3_service,
)
from pipeline.api.transport import Digest, Timeouts
from pipeline.api.v1 import ApiClient
from pipeline.api.v3 import ProjectBook, V3Client

API_VERSIONS = ("v1", "v3")


class AnyVersion:
    """Both clients behind one ``PhotoApi``; ``v1`` and ``v3`` for each version's own calls
    (the v1 catalog, the v3 tools list)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts | None = None,
        projects: ProjectBook | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        timeouts = timeouts or Timeouts()
        self.v1 = ApiClient(base_url, api_key, timeouts=timeouts)
        self.v3 = V3Client(
            base_url,
            api_key,
            timeouts=timeouts,
            projects=projects,
            max_in_flight=max_in_flight,
        )
        self.base_url: URL = self.v1.base_url

    def __repr__(self) -> str:
        return f"AnyVersion(base_url={str(self.base_url)!r})"

    async def __aenter__(self) -> Self:
        await self.v1.__aenter__()
        try:
            await self.v3.__aenter__()
        except BaseException:
            await self.v1.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.v3.__aexit__(exc_type, exc, tb)
        finally:
            await self.v1.__aexit__(exc_type, exc, tb)

    def _for(self, service: str) -> ApiClient | V3Client:
        return self.v3 if is_v3_service(service) else self.v1

    async def send_photo(
        self, photo: str | Path, spec: OrderSpec, *, sent: Digest | None = None
    ) -> str:
        return await self._for(spec.service).send_photo(photo, spec, sent=sent)

    async def spend(
        self,
        order_id: str,
        spec: OrderSpec,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> SubmittedOrder:
        return await self._for(spec.service).spend(order_id, spec, before_send=before_send)

    async def order(self, order_id: str, service: str) -> OrderDetails:
        return await self._for(service).order(order_id, service)

    async def fetch_result(self, image: GeneratedImage, dest: Path, service: str) -> int:
        return await self._for(service).fetch_result(image, dest, service)

    def paces_uploads(self, service: str) -> bool:
        return self._for(service).paces_uploads(service)

    async def download(self, url: str, dest: Path) -> int:
        return await self.v1.download(url, dest)
