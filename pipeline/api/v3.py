"""The client of the AI HomeDesign v3 API: project -> order (one photo) -> process (the charge).

Per photo (notes section 12): the listing's project is found by a search on its address before
one is created, and its id kept in the ledger (``ProjectBook``); one order per photo, its lone
asset's role left out (the API then takes ``primary_angle``); one process per order, which is
the call that spends. The HTTP boundary is ``transport``'s, shared with v1.

Each unknown of the notes (section 13) is read both ways: an answer wrapped in ``{"data": ...}``
or bare; ``process_id`` or a ``process_ids`` list; a ``processes[]`` entry's ``id`` or
``process_id`` (or a bare id); ``final_assets[].src`` else ``temp_src``; a 400 about the role
field (send ``asset_role``, then ``asset_roles``); an expired result link (read the process
again for a fresh one).

The ledger's columns for a v3 photo: ``order_id`` is the v3 order, ``image_id`` the process
(the credit's), ``service`` is ``v3:<tool slug>``, ``space`` the area or room item's value and
``enhancements`` every widget item slug; ``eta`` is empty (v3 gives none). The asset id is not
kept: the order shows it (``GET /v3/order/{id}``) when a later run needs it.
"""

from __future__ import annotations

__all__ = ["MemoryProjects", "ProjectBook", "V3Client"]

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from yarl import URL

from pipeline.addresses import is_loopback
from pipeline.api import v3_shapes as v3
from pipeline.api.records import GeneratedImage, OrderDetails, OrderSpec, SubmittedOrder
from pipeline.api.transport import Digest, Timeouts, Transport, shape_of
from pipeline.errors import AuthRefused, RequestRejected, TransientError

log = logging.getLogger("aihd")

_EXPIRED = frozenset({403, 404, 410})  # a temporary result link that is no longer valid
_ROLE_FIELDS = ("asset_role", "asset_roles")
_UNSEEN_SECONDS = 120.0  # a process of ours read 404 this long is taken as ended
# A process's end (notes section 2 says done | failed; "completed" is read as done).
_FINISHED = frozenset({v3.PROCESS_DONE, "completed", v3.PROCESS_FAILED, "error", "canceled"})


class ProjectBook(Protocol):
    """Where the listing projects' ids are kept (the ledger, keyed by account and address)."""

    def get(self, address: str) -> str | None: ...
    def put(self, address: str, project_id: str) -> None: ...
    def replace(self, address: str, gone: str, project_id: str) -> str:
        """``project_id`` takes the place of ``gone`` (deleted on the server); returns the id
        now kept (another run's, if it replaced ``gone`` first)."""
        ...


class MemoryProjects:
    """A ``ProjectBook`` that forgets: for a client without a ledger (plan, tests)."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def get(self, address: str) -> str | None:
        return self._ids.get(address.casefold())

    def put(self, address: str, project_id: str) -> None:
        self._ids.setdefault(address.casefold(), project_id)

    def replace(self, address: str, gone: str, project_id: str) -> str:
        key = address.casefold()
        if self._ids.get(key) in (None, gone):
            self._ids[key] = project_id
        return self._ids[key]


class V3Client(Transport):
    """Calls of the v3 API. Use as ``async with V3Client(base_url, key) as client``."""

    version = "v3"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts | None = None,
        projects: ProjectBook | None = None,
        max_in_flight: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(base_url, api_key, timeouts=timeouts or Timeouts(), **kw)
        self.projects: ProjectBook = projects or MemoryProjects()
        # The limit may count processes still running (unknown 8): at most this many of ours
        # run at once. Polls of them: every 5 s against the API; a local emulator (loopback)
        # is polled faster, so tests and the demo stay quick.
        self.max_in_flight = max_in_flight
        local = is_loopback(self.base_url.host or "")
        self.poll_seconds = 0.2 if local else v3.MIN_POLL_SECONDS
        self._running: set[str] = set()  # processes this client started, not seen finished
        self._starting = 0  # process POSTs admitted and not yet answered
        self._unseen: dict[str, float] = {}  # processes read 404 since (monotonic)
        self._admit_lock = asyncio.Lock()
        self._assets: dict[str, str] = {}  # order id -> its photo's asset id (this run's)
        # One lookup (or creation) of a listing's project at a time: photos of a new listing
        # uploaded at once would each make a project of their own.
        self._project_locks: dict[str, asyncio.Lock] = {}
        self._remade: set[str] = set()  # listings whose project was made again in this run
        self._role_field: str | None = None  # None: left out (primary_angle by default)

    # -- the tools list -----------------------------------------------------------------------

    @property
    def tools_url(self) -> URL:
        """The real API's tools list is on the web app's host; anyone else's on its own."""
        if self.base_url.host == v3.REAL_API_HOST:
            return URL(v3.TOOLS_URL)
        return self.base_url.with_path(v3.TOOLS_PATH)

    async def tools(self) -> list[str]:
        """Slugs of the active tools. The list needs no key: none is sent to that host."""
        url = self.tools_url
        same_origin = url.origin() == self.base_url.origin()
        body = await self._json(
            "GET",
            v3.TOOLS_PATH,
            absolute=url,
            headers=None if same_origin else {"accept": "application/json"},
            endpoint=f"GET {v3.TOOLS_PATH}",
            lists=True,
        )
        with shape_of(v3.TOOLS_PATH):
            data = _unwrap(body)
            rows = data if isinstance(data, list) else []
            return [
                str(t["slug"])
                for t in rows
                if isinstance(t, dict) and t.get("slug") and t.get("isActive", True) is not False
            ]

    # -- projects -----------------------------------------------------------------------------

    async def project_id(self, address: str) -> str:
        """The listing's project: the ledger's, else found by its address, else created."""
        async with self._project_lock(address):
            known = self.projects.get(address)
            if known is not None:
                return known
            found = await self._find_or_create(address)
            self.projects.put(address, found)
            return self.projects.get(address) or found

    async def _find_or_create(self, address: str) -> str:
        found = await self._find_project(address)
        if found is None:
            body = await self._json(
                "POST", v3.PROJECTS_PATH, json_body={"address": address}, endpoint="POST project"
            )
            found = _id_of(_unwrap(body), ("id", "project_id"), v3.PROJECTS_PATH)
        return found

    def _project_lock(self, address: str) -> asyncio.Lock:
        return self._project_locks.setdefault(address.strip().casefold(), asyncio.Lock())

    async def _project_again(self, address: str, gone: str, refused: RequestRejected) -> str:
        """The listing's project ``gone`` was answered 404: if the server confirms it is gone
        (deleted between nights), find or make the listing's project again, once per run, and
        keep its id in the ledger; else ``refused`` stands."""
        async with self._project_lock(address):
            kept = self.projects.get(address)
            if kept is not None and kept != gone:
                return kept  # another photo of the listing made it again already
            if address.strip().casefold() in self._remade or await self._project_exists(gone):
                raise refused
            project = await self._find_or_create(address)
            kept = self.projects.replace(address, gone, project)
            self._remade.add(address.strip().casefold())
            log.warning(
                "v3 project %s of listing %r is gone from the server (deleted?): its photos "
                "now go to project %s, kept in the ledger",
                gone,
                address,
                kept,
            )
            return kept

    async def _project_exists(self, project_id: str) -> bool:
        """True unless the API answers 404 for the project (any other error propagates)."""
        path = v3.PROJECT_PATH.format(project_id=project_id)
        try:
            await self._json("GET", path, endpoint="GET project")
        except RequestRejected as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _find_project(self, address: str) -> str | None:
        params = {"s": address, "page": "1", "limit": "30"}
        body = await self._json(
            "GET", v3.PROJECTS_PATH, params=params, endpoint="GET project", lists=True
        )
        data = _unwrap(body)
        rows = data if isinstance(data, list) else []
        wanted = address.strip().casefold()
        for row in rows:
            if isinstance(row, dict) and str(row.get("address", "")).strip().casefold() == wanted:
                value = row.get("id")
                if isinstance(value, str | int) and str(value):
                    return str(value)
        return None

    # -- the PhotoApi interface (pipeline.api.interface) ----------------------------------------

    async def send_photo(
        self, photo: str | Path, spec: OrderSpec, *, sent: Digest | None = None
    ) -> str:
        """Create the photo's order (free); returns its id and keeps its asset's id."""
        fields: list[tuple[str, str]] = []
        project = await self.project_id(spec.project) if spec.project else None
        while True:
            if project is not None:
                fields = [("project_id", project)]
            role = [(self._role_field, v3.PRIMARY_ANGLE)] if self._role_field else []
            try:
                body = await self._post_file(
                    v3.ORDERS_PATH, photo, [*fields, *role], v3.ASSET_FILE_FIELD, sent=sent
                )
                break
            except RequestRejected as exc:
                if exc.status == 404 and project is not None and spec.project:
                    # POST /order names one id, the project's: a 404 is about it (notes: 404
                    # is an unknown id). The project is read before anything is made again.
                    again = await self._project_again(spec.project, project, exc)
                    if again == project:
                        raise
                    project = again
                    sent = None  # the first attempt fed it the whole photo already
                    continue
                # The role field is left out (one photo: primary_angle). A server that wants
                # it after all says so with a 400: the singular, then the plural (unknown 3).
                if exc.status != 400 or "role" not in f"{exc.error} {exc.key}".casefold():
                    raise
                following = _ROLE_FIELDS.index(self._role_field) + 1 if self._role_field else 0
                if following >= len(_ROLE_FIELDS):
                    raise
                self._role_field = _ROLE_FIELDS[following]
                sent = None  # the first attempt fed it the whole photo already
        data = _unwrap(body)
        with shape_of(v3.ORDERS_PATH):
            order_id = _id_of(data, ("order_id", "id"), v3.ORDERS_PATH)
            asset = _first_asset(data)
        if asset:
            self._assets[order_id] = asset
        return order_id

    async def spend(
        self,
        order_id: str,
        spec: OrderSpec,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> SubmittedOrder:
        """Start the photo's process: this spends the credit.

        ``before_send`` (the caller's intent) runs only once a process slot is free, right
        before the POST: an intent never waits here, where a pause or a long wait could let
        another run take the photo over, or let the order window count it as answered.
        A lost answer raises OutcomeUnknown: the caller reads ``order()`` before anything else.
        """
        asset = self._assets.get(order_id) or await self._asset_of(order_id)
        await self._admit()
        try:
            if before_send is not None:
                await before_send()
            process = await self._post_process(order_id, asset, spec)
        finally:
            self._starting -= 1
        if process:
            self._running.add(process)
        self._assets.pop(order_id, None)
        return SubmittedOrder(order_id=order_id, image_id=process, eta=None)

    async def _admit(self) -> None:
        """Wait until fewer than ``max_in_flight`` of this client's processes run."""
        cap = self.max_in_flight
        async with self._admit_lock:
            while cap is not None and len(self._running) + self._starting >= cap:
                for process in list(self._running):
                    try:
                        status, _ = await self._process(process)
                    except RequestRejected as exc:
                        if exc.status != 404:
                            raise
                        # Not shown yet (the details may lag its start): running, for a while.
                        first = self._unseen.setdefault(process, time.monotonic())
                        if time.monotonic() - first > _UNSEEN_SECONDS:
                            self._running.discard(process)
                        continue
                    if status.casefold() in _FINISHED:
                        self._running.discard(process)
                if len(self._running) + self._starting >= cap:
                    await asyncio.sleep(self.poll_seconds)
            self._starting += 1

    async def _post_process(self, order_id: str, asset: str, spec: OrderSpec) -> str:
        payload = {
            "order_id": order_id,
            "tool": spec.tool,
            "asset_map": {spec.slot: asset},
            "widgets": [{"slug": w, "item_slugs": list(items)} for w, items in spec.widgets],
        }
        body = await self._json(
            "POST", v3.PROCESSES_PATH, json_body=payload, spends=True, endpoint="POST process"
        )
        data = _unwrap(body)
        process = ""
        if isinstance(data, dict):
            ids = data.get("process_ids")
            if isinstance(ids, list) and ids and isinstance(ids[0], str | int):
                process = str(ids[0])
            elif isinstance(data.get("process_id"), str | int):
                process = str(data["process_id"])
            elif isinstance(data.get("id"), str | int):
                process = str(data["id"])
        return process

    async def order(self, order_id: str, service: str = "") -> OrderDetails:
        """The order and its photo's process: its status and, once done, its results."""
        del service
        data = await self._order_data(order_id)
        with shape_of(v3.ORDER_PATH):
            status = str(data.get("status", ""))
            entries = data.get("processes") or []
            processes = tuple(p for p in (_process_id(e) for e in entries) if p)
        if entries and not processes:
            log.warning("order %s: processes of an unknown shape: %.200r", order_id, entries)
            raise TransientError(
                f"GET order: order {order_id} lists processes aihd cannot read",
                endpoint="GET order",
            )
        if not processes:
            return OrderDetails(order_id, status, ())
        process = processes[-1]  # one per order; a later one would be a regeneration
        pstatus, images = await self._process(process)
        finished = pstatus.casefold() in _FINISHED
        if finished:
            self._running.discard(process)
        shown = images if finished and pstatus.casefold() != v3.PROCESS_FAILED else ()
        return OrderDetails(order_id, pstatus or status, shown, processes)

    async def fetch_result(self, image: GeneratedImage, dest: Path, service: str) -> int:
        """Download a result; a temporary link that expired is read afresh from its process."""
        del service
        try:
            return await self.download(image.src, dest)
        except (RequestRejected, AuthRefused) as exc:
            # A refused link (403 "request has expired", 404, 410) is not the key's fault.
            if exc.status not in _EXPIRED or not image.process_id:
                raise
        _, fresh = await self._process(image.process_id)
        for other in fresh:
            if other.id == image.id and other.src != image.src:
                return await self.download(other.src, dest)
        raise TransientError(
            f"result of process {image.process_id}: its link expired and no fresh one yet",
            endpoint="result",
        )

    def paces_uploads(self, service: str) -> bool:
        """The v3 limit may count orders rather than processes (unknown 8): an order is
        created only when its process's slot is free, so either count stays in the window."""
        del service
        return True

    # -- reads ----------------------------------------------------------------------------------

    async def _order_data(self, order_id: str) -> dict[str, Any]:
        path = v3.ORDER_PATH.format(order_id=order_id)
        body = await self._json("GET", path, endpoint="GET order")
        data = _unwrap(body)
        if not isinstance(data, dict):
            raise TransientError("GET order: the answer is not an order", endpoint="GET order")
        return data

    async def _asset_of(self, order_id: str) -> str:
        """The order's photo asset (an order created by an earlier run)."""
        data = await self._order_data(order_id)
        with shape_of(v3.ORDER_PATH):
            asset = _first_asset(data)
        if not asset:
            raise TransientError(
                f"GET order: order {order_id} shows no asset to process", endpoint="GET order"
            )
        return asset

    async def _process(self, process_id: str) -> tuple[str, tuple[GeneratedImage, ...]]:
        path = v3.PROCESS_PATH.format(process_id=process_id)
        body = await self._json("GET", path, endpoint="GET process")
        data = _unwrap(body)
        with shape_of(v3.PROCESS_PATH):
            if not isinstance(data, dict):
                raise TypeError("not an object")
            status = str(data.get("status", ""))
            images = []
            for n, asset in enumerate(data.get("final_assets") or []):
                if not isinstance(asset, dict):
                    continue
                src = asset.get("src") or asset.get("temp_src")
                if not isinstance(src, str) or not src:
                    continue
                ident = asset.get("asset_id") or asset.get("id") or str(n)
                images.append(GeneratedImage(str(ident), src, status, process_id))
        return status, tuple(images)


def _unwrap(body: Mapping[str, Any]) -> Any:
    """The answer's payload: ``data`` when wrapped (the live API), else the body (the docs)."""
    if "data" in body and isinstance(body["data"], dict | list):
        return body["data"]
    return body


def _id_of(data: Any, names: Sequence[str], endpoint: str) -> str:
    if isinstance(data, dict):
        for name in names:
            value = data.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    raise TransientError(f"{endpoint}: answer has no {names[0]!r}", endpoint=endpoint)


def _first_asset(data: Any) -> str:
    """The order's photo: its primary_angle asset (the role, when shown), else the first."""
    assets = data.get("assets") if isinstance(data, dict) else None
    found = []
    for asset in assets if isinstance(assets, list) else []:
        if isinstance(asset, dict):
            value = asset.get("id") or asset.get("asset_id")
            if isinstance(value, str | int) and str(value):
                primary = asset.get("role", v3.PRIMARY_ANGLE) == v3.PRIMARY_ANGLE
                found.append((not primary, str(value)))
    return min(found)[1] if found else ""


def _process_id(entry: Any) -> str:
    """A ``processes[]`` entry's id: ``id`` or ``process_id`` (unknown 6), or a bare id."""
    if isinstance(entry, str | int) and not isinstance(entry, bool):
        return str(entry)
    if isinstance(entry, dict):
        for name in ("process_id", "id"):
            value = entry.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return ""
