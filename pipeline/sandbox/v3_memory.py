"""The v3 emulator's records kept between processes (memory.py does v1's): projects, orders
with their assets, processes, and the secret that signs temporary links.

``RememberingV3Store`` is the store of an emulator with a ``state_path``: it loads what an
earlier emulator of the account kept, writes each new record as it is made, and looks a
record it does not know up in the file (another emulator, running now, may have made it).
Times are kept as Unix time and read back on this process's monotonic clock.
"""

from __future__ import annotations

__all__ = ["RememberingV3Store"]

import time
from typing import Any

from .memory import SandboxMemory
from .v3_readings import V3Readings
from .v3_state import ROLES, Asset, Order, Process, Project, Role, V3Store, new_id


class RememberingV3Store(V3Store):
    """A V3Store whose records outlive the emulator (see the module docstring)."""

    def __init__(self, readings: V3Readings, memory: SandboxMemory) -> None:
        super().__init__(readings)
        self._memory = memory
        fresh = {"v3-link": self.link_secret.hex()}
        self.link_secret = bytes.fromhex(memory.ids("secret", fresh)["v3-link"])
        for body in memory.records("v3-project"):
            self._projects.setdefault(body["id"], _project(body))
        for body in memory.records("v3-order"):
            self._take_order(body)
        for body in memory.records("v3-process"):
            self._take_process(body)

    # Writing ----------------------------------------------------------------------------------

    def add_project(self, address: str, created_at: str, default: bool = False) -> Project:
        project = super().add_project(address, created_at, default)
        self._keep_project(project)
        return project

    def default_project(self, created_at: str) -> Project:
        """The account's default project: the first any emulator of the account made."""
        with self._lock:
            known = self._default_project
        if known is not None:
            return super().default_project(created_at)
        mine = Project(new_id(), "Default project", created_at, True, created_at)
        self._keep_project(mine)  # written before it is named: whoever reads the name finds it
        chosen = self._memory.ids("v3-default", {"project": mine.id})["project"]
        project = mine if chosen == mine.id else self.project(chosen)
        with self._lock:
            project = self._projects.setdefault((project or mine).id, project or mine)
            if self._default_project is None:
                self._default_project = project.id
            return self._projects[self._default_project]

    def add_order(self, project: Project, assets: tuple[Asset, ...], created_at: str) -> Order:
        for asset in assets:
            self._memory.keep_photo(asset.sha256, asset.photo)
        order = super().add_order(project, assets, created_at)
        self._keep_project(project)
        self._keep_order(order)
        return order

    def add_process(self, order: Order, process: Process) -> None:
        super().add_process(order, process)
        self._memory.save_record("v3-process", process.id, _process_body(process))
        self._memory.save_record("v3-result", process.result_id, {"process": process.id})
        self._keep_order(order)

    # Reading: what this emulator does not know may be another's ------------------------------

    def project(self, project_id: str) -> Project | None:
        found = super().project(project_id)
        if found is None and (body := self._memory.record("v3-project", project_id)):
            with self._lock:
                found = self._projects.setdefault(project_id, _project(body))
        return found

    def order(self, order_id: str) -> Order | None:
        found = super().order(order_id)
        if found is None and (body := self._memory.record("v3-order", order_id)):
            found = self._take_order(body)
            for process_id in found.process_ids:
                self.process(process_id)
        return found

    def process(self, process_id: str) -> Process | None:
        found = super().process(process_id)
        body = None if found is not None else self._memory.record("v3-process", process_id)
        if body is not None and self.order(body["order_id"]) is not None:
            found = self._take_process(body)
        return found

    def result(self, result_id: str) -> Process | None:
        found = super().result(result_id)
        if found is None and (body := self._memory.record("v3-result", result_id)):
            found = self.process(body["process"])
        return found

    # Records to and from JSON -----------------------------------------------------------------

    def _keep_project(self, project: Project) -> None:
        with self._lock:
            body = {
                "id": project.id,
                "address": project.address,
                "created_at": project.created_at,
                "default": project.default,
                "updated_at": project.updated_at,
                "updated": _wall(project.updated),
                "input_count": project.input_count,
            }
        self._memory.save_record("v3-project", project.id, body)

    def _keep_order(self, order: Order) -> None:
        with self._lock:
            body = {
                "id": order.id,
                "project_id": order.project_id,
                "created_at": order.created_at,
                "assets": [[a.id, a.role, a.sha256] for a in order.assets],
                "process_ids": list(order.process_ids),
            }
        self._memory.save_record("v3-order", order.id, body)

    def _take_order(self, body: dict[str, Any]) -> Order:
        assets = tuple(
            Asset(asset_id, _role(role), sha256, self._memory.photos / sha256)
            for asset_id, role, sha256 in body["assets"]
        )
        order = Order(
            body["id"], body["project_id"], assets, body["created_at"], list(body["process_ids"])
        )
        with self._lock:
            order = self._orders.setdefault(order.id, order)
            self._assets.update((asset.id, asset) for asset in order.assets)
        return order

    def _take_process(self, body: dict[str, Any]) -> Process:
        order = self._orders.get(body["order_id"])
        asset = None if order is None else order.asset(body["input"])
        if asset is None:  # its order was not kept (an older file): a stand-in input
            asset = Asset(body["input"], "primary_angle", "", self._memory.photos / "missing")
        process = Process(
            id=body["id"],
            order_id=body["order_id"],
            tool=body["tool"],
            input=asset,
            widgets=tuple((slug, tuple(items)) for slug, items in body["widgets"]),
            process_group_id=body["process_group_id"],
            created_at=body["created_at"],
            started=_monotonic(body["started"]),
            seconds=body["seconds"],
            fails=body["fails"],
            result_id=body["result_id"],
        )
        with self._lock:
            process = self._processes.setdefault(process.id, process)
            self._results.setdefault(process.result_id, process)
        return process


def _project(body: dict[str, Any]) -> Project:
    return Project(
        body["id"],
        body["address"],
        body["created_at"],
        body["default"],
        body["updated_at"],
        _monotonic(body["updated"]),
        body["input_count"],
    )


def _process_body(process: Process) -> dict[str, Any]:
    return {
        "id": process.id,
        "order_id": process.order_id,
        "tool": process.tool,
        "input": process.input.id,
        "widgets": [[slug, list(items)] for slug, items in process.widgets],
        "process_group_id": process.process_group_id,
        "created_at": process.created_at,
        "started": _wall(process.started),
        "seconds": process.seconds,
        "fails": process.fails,
        "result_id": process.result_id,
    }


def _role(text: str) -> Role:
    for role in ROLES:
        if role == text:
            return role
    return "primary_angle"


def _wall(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)


def _monotonic(wall: float) -> float:
    return time.monotonic() - (time.time() - wall)
