"""The v3 emulator's records: projects, orders with their assets, processes and their results.

The account's key, faults, window and charges stay in SandboxState (state.py), shared with v1;
this store holds only what v3 adds, under its own lock.
"""

from __future__ import annotations

__all__ = [
    "PENDING_SHARE",
    "ROLES",
    "Asset",
    "Order",
    "Process",
    "Project",
    "Role",
    "V3Store",
    "new_id",
]

import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .v3_readings import V3Readings

Role = Literal["primary_angle", "secondary_angle", "mask"]
ROLES: tuple[Role, ...] = ("primary_angle", "secondary_angle", "mask")
# A process is "pending" for this share of its time, then "processing" until done.
PENDING_SHARE = 0.25


def new_id() -> str:
    return secrets.token_hex(12)


@dataclass(slots=True)
class Project:
    """A listing's project; counts are mutated only under the store's lock."""

    id: str
    address: str
    created_at: str
    default: bool = False
    updated_at: str = ""
    updated: float = field(default_factory=time.monotonic)  # for sort=modified
    input_count: int = 0


@dataclass(frozen=True, slots=True)
class Asset:
    """One uploaded file of an order."""

    id: str
    role: Role
    sha256: str
    photo: bytes | Path = field(repr=False)


@dataclass(slots=True)
class Order:
    """A v3 order: its assets, and the processes run on it so far."""

    id: str
    project_id: str
    assets: tuple[Asset, ...]
    created_at: str
    process_ids: list[str] = field(default_factory=list)

    def asset(self, asset_id: str) -> Asset | None:
        return next((asset for asset in self.assets if asset.id == asset_id), None)


@dataclass(frozen=True, slots=True)
class Process:
    """One generation: its tool, its input asset, widgets, timing and fate."""

    id: str
    order_id: str
    tool: str
    input: Asset
    widgets: tuple[tuple[str, tuple[str, ...]], ...]
    process_group_id: str | None
    created_at: str
    started: float  # time.monotonic()
    seconds: float  # from start to done or failed
    fails: bool
    result_id: str = field(default_factory=new_id)

    def status(self, now: float) -> str:
        if now < self.started + self.seconds * PENDING_SHARE:
            return "pending"
        if now < self.started + self.seconds:
            return "processing"
        return "failed" if self.fails else "done"


class V3Store:
    """The v3 records of one emulator, and the readings it plays now."""

    def __init__(self, readings: V3Readings) -> None:
        self._lock = threading.Lock()
        self._readings = readings
        self.link_secret = secrets.token_bytes(16)  # signs temp links
        self._projects: dict[str, Project] = {}
        self._default_project: str | None = None
        self._orders: dict[str, Order] = {}
        self._assets: dict[str, Asset] = {}
        self._processes: dict[str, Process] = {}
        self._results: dict[str, Process] = {}

    @property
    def readings(self) -> V3Readings:
        with self._lock:
            return self._readings

    def set_readings(self, readings: V3Readings) -> None:
        with self._lock:
            self._readings = readings

    # Projects ---------------------------------------------------------------------------------

    def add_project(self, address: str, created_at: str, default: bool = False) -> Project:
        project = Project(new_id(), address, created_at, default, created_at)
        with self._lock:
            self._projects[project.id] = project
        return project

    def default_project(self, created_at: str) -> Project:
        """The account's default project, made on first use."""
        with self._lock:
            if self._default_project is not None:
                return self._projects[self._default_project]
            project = Project(new_id(), "Default project", created_at, True, created_at)
            self._projects[project.id] = project
            self._default_project = project.id
            return project

    def project(self, project_id: str) -> Project | None:
        with self._lock:
            return self._projects.get(project_id)

    def delete_project(self, project_id: str) -> bool:
        """The project is deleted, as a user may do in the web app: its id is unknown from
        now on (404), and a search no longer finds it. Its orders are kept (the notes do not
        say what becomes of them; no test here reads them)."""
        with self._lock:
            if self._default_project == project_id:
                self._default_project = None
            return self._projects.pop(project_id, None) is not None

    def projects(self) -> list[Project]:
        """All projects, oldest first."""
        with self._lock:
            return list(self._projects.values())

    def result_count(self, project_id: str, now: float) -> int:
        with self._lock:
            return sum(
                1
                for process in self._processes.values()
                if process.status(now) == "done"
                and self._orders[process.order_id].project_id == project_id
            )

    # Orders and processes ---------------------------------------------------------------------

    def add_order(self, project: Project, assets: tuple[Asset, ...], created_at: str) -> Order:
        order = Order(new_id(), project.id, assets, created_at)
        with self._lock:
            self._orders[order.id] = order
            self._assets.update((asset.id, asset) for asset in assets)
            project.input_count += len(assets)
            project.updated_at, project.updated = created_at, time.monotonic()
        return order

    def asset(self, asset_id: str) -> Asset | None:
        with self._lock:
            return self._assets.get(asset_id)

    def order(self, order_id: str) -> Order | None:
        with self._lock:
            return self._orders.get(order_id)

    def add_process(self, order: Order, process: Process) -> None:
        with self._lock:
            self._processes[process.id] = process
            self._results[process.result_id] = process
            order.process_ids.append(process.id)

    def process(self, process_id: str) -> Process | None:
        with self._lock:
            return self._processes.get(process_id)

    def processes(self, order: Order) -> list[Process]:
        with self._lock:
            return [self._processes[process_id] for process_id in order.process_ids]

    def result(self, result_id: str) -> Process | None:
        with self._lock:
            return self._results.get(result_id)

    def in_flight_now(self) -> int:
        """Processes not yet done or failed."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1 for process in self._processes.values() if now < process.started + process.seconds
            )
