"""The local emulator's memory: config, catalog, small photos, orders, order window, stats."""

from __future__ import annotations

__all__ = [
    "DOC_SERVICES",
    "PHOTO_MEMORY_BYTES",
    "RATE_LIMIT_MESSAGE",
    "Fault",
    "Faults",
    "Order",
    "SandboxConfig",
    "SandboxState",
    "SandboxStats",
    "StoredPhoto",
    "faults_from_json",
    "stats_json",
]

import collections
import contextlib
import dataclasses
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from .catalog import SandboxCatalog
from .memory import SandboxMemory, StoredOrder
from .v3_memory import RememberingV3Store
from .v3_readings import V3Readings
from .v3_state import V3Store
from .webhooks import Webhooks, WebhookSender

DOC_SERVICES = frozenset(
    {
        "service-creative-designer",
        "service-ai-virtual-staging",
        "service-item-removal",
        "service-day-to-dusk",
        "service-image-enhancement",
    }
)
RATE_LIMIT_MESSAGE = "rate-limit exceeded, 10 generates per 10 minutes only"

Fault = Literal["reset", "error", "stall"]
# An uploaded photo as stored: its bytes in memory, or the file that holds them.
StoredPhoto: TypeAlias = bytes | Path
# Small uploads are kept in memory up to this many bytes in all: creating a file per upload
# cost ~0.5 ms of kernel CPU, serialised in one directory, and capped the open-pipe benchmark.
PHOTO_MEMORY_BYTES = 256 * 1024 * 1024
POST_TIMES_KEPT = 100  # SandboxStats.post_times: the latest POSTs' times, a bounded few


def _opaque_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour to inject, each a fraction of /v1 and /v3 requests; all zero by default."""

    latency: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    lost_after_charge_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0
    order_error_rate: float = 0.0  # 5xx on order (v3: process) POSTs only, before any charge
    order_reset_rate: float = 0.0  # order POSTs whose connection drops before any charge
    error_first: int = 0  # the first N /v1 requests after the faults are set answer 500
    # A charged order's answer is held back until the client goes away or hold_seconds pass
    # (then sent): the moment between charge and record, made certain for kill tests.
    hold_after_charge_rate: float = 0.0
    hold_seconds: float = 30.0
    # A charged order (v3: process) answered 500 with the API's own error body, as a server
    # that fails after it charged: 1.0 makes every one so (no draw at all when 0).
    error_after_charge_rate: float = 0.0
    # The order's details lag the charge: for this many seconds after it, v1's order reads
    # idle with no results, and v3's order shows no process (its process reads 404).
    details_lag_seconds: float = 0.0
    process_failure_rate: float = 0.0  # v3 processes that end "failed" (charged all the same)
    upscale_lost_rate: float = 0.0  # upscales taken (their webhook will come), answer lost
    # Seconds a request of one kind is held before it is handled: the moment a stop test
    # needs, made certain (an upload in flight; an order POST sent, its intent on disk, not
    # charged yet; a result download under way).
    upload_delay: float = 0.0
    order_delay: float = 0.0
    download_delay: float = 0.0
    seed: int | None = None
    # Only requests whose path starts with one of these (e.g. "/v1/catalog/") meet the faults
    # above and below, and only they take draws; empty: every /v1 and /v3 request.
    paths: tuple[str, ...] = ()
    # Every Nth request the faults apply to answers 500 (2: every other one, the 2nd, 4th...),
    # counted from when the faults are set: a certain pattern, not a rate's luck.
    error_every: int = 0


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How a local emulator behaves: key, order window, timing, results, faults, photo memory."""

    api_key: str = field(repr=False)
    orders_per_window: int = 10
    window_seconds: float = 600.0
    eta_seconds: int = 30
    time_scale: float = 1.0
    results_per_order: int = 1
    plan_allows_service: bool = True
    faults: Faults = Faults()
    photo_memory_bytes: int = PHOTO_MEMORY_BYTES
    # Which reading of each v3 unknown to play (v3_readings.py).
    v3: V3Readings = field(default_factory=V3Readings)
    # A folder that keeps the catalog ids, v1 orders and photos between emulators (memory.py):
    # the in-process `--sandbox` of one account remembers what it was asked before. None:
    # everything is forgotten when the emulator stops.
    state_path: Path | None = None
    # Where the account's webhooks go (webhooks.py); none by default.
    webhooks: Webhooks = field(default_factory=Webhooks)
    # An upscale's webhook comes this long after its POST (None: the order's scaled eta).
    upscale_seconds: float | None = None
    # The API notes know the upscaled photo only from its webhook (2.7); True plays the other
    # reading: the order's details show it too, as upscaled_image_src on its generated image.
    upscale_in_order_details: bool = False


@dataclass(frozen=True, slots=True)
class SandboxStats:
    """A snapshot of what the emulator was asked and what it charged."""

    charges: dict[str, int]
    orders_charged: int
    order_posts: int
    uploads: int
    rate_limited: int
    downloads: int
    requests: dict[str, int]
    held: int = 0  # charged order answers held back so far (Faults.hold_after_charge_rate)
    holding: int = 0  # of them, held back right now
    process_posts: int = 0  # POST /v3/process received (order_posts counts POST /v1/order)
    processes_charged: int = 0  # v3 processes charged (orders_charged counts v1 orders)
    v3_orders: int = 0  # v3 orders created (uploads counts them too)
    upscale_posts: int = 0  # POST .../download/upscale received
    upscales: dict[str, int] = field(default_factory=dict)  # generated image id -> upscales
    # Webhook deliveries: sent, answered_2xx, refused (non-2xx), unanswered.
    webhooks: dict[str, int] = field(default_factory=dict)
    # When the latest order and process POSTs were received (time.monotonic, which every
    # process of the machine shares), oldest first: what a test measures a repost's wait by.
    post_times: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Order:
    """One uploaded photo's order; mutated only under the state's lock."""

    id: str
    sha256: str
    photo: StoredPhoto = field(repr=False)
    created_at: str
    before_image_id: str = field(default_factory=_opaque_id)
    space: str = ""
    image_id: str = ""
    charged_at: float | None = None
    generated_ids: list[str] = field(default_factory=list)


class SandboxState:
    """Everything the handlers share; the lock makes stats and faults safe from other threads."""

    def __init__(self, config: SandboxConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.photos_dir = workdir / "photos"
        self.results_dir = workdir / "results"
        self.uploads_dir = workdir / "uploads"
        for folder in (self.photos_dir, self.results_dir, self.uploads_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.memory = SandboxMemory(config.state_path) if config.state_path else None
        self.catalog = SandboxCatalog(None if self.memory is None else self.memory.ids)
        self._lock = threading.Lock()
        self.api_key = config.api_key  # the account's key now (rotate_key replaces it)
        # While set, every charged v1 order stays "processing" whatever its eta: a test makes
        # "results not ready yet" last exactly as long as it needs (Sandbox.hold_results).
        self.results_held = False
        self._faults = config.faults
        self._rng = random.Random(config.faults.seed)
        self._errors_left = config.faults.error_first
        self._faulted_requests = 0  # requests Faults.paths let through, for error_every
        self._orders: dict[str, Order] = {}
        self._results: dict[str, Order] = {}
        self._window: collections.deque[float] = collections.deque(
            self.memory.window_places_within(config.window_seconds) if self.memory else ()
        )
        self._charges: collections.Counter[str] = collections.Counter()
        self._requests: collections.Counter[str] = collections.Counter()
        self._counts: collections.Counter[str] = collections.Counter()
        self._post_times: collections.deque[float] = collections.deque(maxlen=POST_TIMES_KEPT)
        self._photos: dict[str, bytes] = {}  # sha256 -> bytes of a small photo kept in memory
        self._photo_bytes = 0
        self.v3 = (
            V3Store(config.v3)
            if self.memory is None
            else RememberingV3Store(config.v3, self.memory)
        )
        self.user_id = _opaque_id()  # the account's user, as orders and webhooks name it
        self.webhooks = WebhookSender(config.webhooks)
        self._upscales: dict[str, float] = {}  # generated image id -> when it is ready
        self._upscale_counts: collections.Counter[str] = collections.Counter()

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()

    # Faults -----------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            self._errors_left = faults.error_first
            self._faulted_requests = 0

    def draw_faults(self, is_order_post: bool, path: str = "") -> tuple[Fault | None, bool]:
        """One draw per fault kind, in a fixed order, so a seed replays the same story; none
        for a request outside ``Faults.paths``."""
        with self._lock:
            faults, rng = self._faults, self._rng
            if faults.paths and not path.startswith(faults.paths):
                return None, False
            self._faulted_requests += 1
            every = faults.error_every
            reset = rng.random() < faults.reset_rate
            error = rng.random() < faults.error_rate
            stall = rng.random() < faults.stall_rate
            lost = is_order_post and rng.random() < faults.lost_after_charge_rate
            if is_order_post and faults.order_error_rate:
                error = error or rng.random() < faults.order_error_rate
            if is_order_post and faults.order_reset_rate:
                reset = reset or rng.random() < faults.order_reset_rate
            if self._errors_left > 0:
                self._errors_left -= 1
                error = True
            if every and self._faulted_requests % every == 0:
                error = True
        fault: Fault | None = "reset" if reset else "error" if error else "stall" if stall else None
        return fault, lost

    def draw_process_failure(self) -> bool:
        """Whether a new v3 process will fail; no draw at all when the rate is 0."""
        with self._lock:
            rate = self._faults.process_failure_rate
            return rate > 0 and self._rng.random() < rate

    def draw_upscale_lost(self) -> bool:
        """Whether to drop an upscale's answer after taking it; no draw when the rate is 0."""
        with self._lock:
            rate = self._faults.upscale_lost_rate
            return rate > 0 and self._rng.random() < rate

    def draw_error_after_charge(self) -> bool:
        """Whether to answer a charged order with a 500; no draw at all when the rate is 0."""
        with self._lock:
            rate = self._faults.error_after_charge_rate
            return rate > 0 and self._rng.random() < rate

    def shows_charge(self, charged_at: float) -> bool:
        """Whether the order's details show a charge made at ``charged_at`` (monotonic) yet."""
        return time.monotonic() >= charged_at + self.faults.details_lag_seconds

    def draw_hold(self) -> bool:
        """Whether to hold back a charged order's answer; no draw at all when the rate is 0."""
        with self._lock:
            rate = self._faults.hold_after_charge_rate
            return rate > 0 and self._rng.random() < rate

    @contextlib.contextmanager
    def holding_answer(self) -> Iterator[None]:
        """Count a charged order's answer as held back while the block runs."""
        with self._lock:
            self._counts["held"] += 1
            self._counts["holding"] += 1
        try:
            yield
        finally:
            with self._lock:
                self._counts["holding"] -= 1

    # Counters ---------------------------------------------------------------------------------

    def count_request(self, route: str) -> None:
        with self._lock:
            self._requests[route] += 1

    def count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def count_post(self, what: str) -> None:
        """An order or process POST received: counted, and its time kept."""
        with self._lock:
            self._counts[what] += 1
            self._post_times.append(time.monotonic())

    def stats(self) -> SandboxStats:
        with self._lock:
            return SandboxStats(
                charges=dict(self._charges),
                orders_charged=self._counts["orders_charged"],
                order_posts=self._counts["order_posts"],
                uploads=self._counts["uploads"],
                rate_limited=self._counts["rate_limited"],
                downloads=self._counts["downloads"],
                requests=dict(self._requests),
                held=self._counts["held"],
                holding=self._counts["holding"],
                process_posts=self._counts["process_posts"],
                processes_charged=self._counts["processes_charged"],
                v3_orders=self._counts["v3_orders"],
                upscale_posts=self._counts["upscale_posts"],
                upscales=dict(self._upscale_counts),
                webhooks=self.webhooks.snapshot(),
                post_times=list(self._post_times),
            )

    # Photos -----------------------------------------------------------------------------------

    def keep_in_memory(self, sha256: str, data: bytes) -> bytes | None:
        """The one in-memory copy of these bytes, or None if they do not fit the budget."""
        with self._lock:
            if (kept := self._photos.get(sha256)) is not None:
                return kept  # the same bytes were uploaded before
            if self._photo_bytes + len(data) > self.config.photo_memory_bytes:
                return None
            self._photos[sha256] = data
            self._photo_bytes += len(data)
            return data

    def write_photo(self, sha256: str, data: bytes) -> Path:
        """The photo's file under photos_dir, written (temp file, rename) unless it exists."""
        stored = self.photos_dir / sha256
        if not stored.exists():
            fd, temp_name = tempfile.mkstemp(dir=self.uploads_dir)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp_name, stored)
        return stored

    # Orders -----------------------------------------------------------------------------------

    def add_order(self, sha256: str, photo: StoredPhoto, created_at: str) -> Order:
        order = Order(_opaque_id(), sha256, photo, created_at)
        if self.memory is not None:
            self.memory.keep_photo(sha256, photo)
            self._remember(order)
        with self._lock:
            self._orders[order.id] = order
            self._counts["uploads"] += 1
        return order

    def order(self, order_id: str) -> Order | None:
        with self._lock:
            order = self._orders.get(order_id)
        if order is None and self.memory is not None:
            order = self._recall(order_id)
        return order

    def _remember(self, order: Order) -> None:
        assert self.memory is not None
        with self._lock:
            stored = StoredOrder(
                order.id,
                order.sha256,
                self.memory.photos / order.sha256,
                order.created_at,
                order.before_image_id,
                order.space,
                order.image_id,
                order.charged_at,
                tuple(order.generated_ids),
            )
        self.memory.save_order(stored)

    def _recall(self, order_id: str) -> Order | None:
        """An order an earlier emulator of the account took (memory.py), now known here too."""
        assert self.memory is not None
        stored = self.memory.order(order_id)
        if stored is None or not stored.photo.is_file():
            return None
        order = Order(
            stored.id,
            stored.sha256,
            stored.photo,
            stored.created_at,
            before_image_id=stored.before_image_id,
            space=stored.space,
            image_id=stored.image_id,
            charged_at=stored.charged_at,
            generated_ids=list(stored.generated_ids),
        )
        with self._lock:
            order = self._orders.setdefault(order.id, order)
            for generated_id in order.generated_ids:
                self._results.setdefault(generated_id, order)
        return order

    def charge(self, order: Order, space_name: str) -> str | None:
        """Charge the order if the sliding window has room: its new image id, or None for 429."""
        now = time.monotonic()
        config = self.config
        with self._lock:
            if not self._admit(now):
                return None
            self._charges[order.sha256] += 1
            self._counts["orders_charged"] += 1
            # A re-post is a new generation: new image and result ids, a new eta.
            order.space = space_name
            order.image_id = _opaque_id()
            order.charged_at = now
            order.generated_ids = [_opaque_id() for _ in range(config.results_per_order)]
            for generated_id in order.generated_ids:
                self._results[generated_id] = order
            image_id = order.image_id
        if self.memory is not None:
            self._remember(order)  # charged: on disk before the answer leaves
        return image_id

    def _admit(self, now: float, in_flight: int = 0) -> bool:
        """Take a place in the account's window (v1 and v3 share it), under the lock."""
        config = self.config
        while self._window and now - self._window[0] >= config.window_seconds:
            self._window.popleft()
        if max(len(self._window), in_flight) >= config.orders_per_window:
            self._counts["rate_limited"] += 1
            return False
        self._window.append(now)
        return True

    def admit(self, in_flight: int = 0) -> bool:
        """A v3 call the window counts takes a place: False means 429 (counted)."""
        now = time.monotonic()
        with self._lock:
            if not self._admit(now, in_flight):
                return False
        self._remember_place(now)
        return True

    def charge_process(self, sha256: str, *, in_window: bool, in_flight: int = 0) -> bool:
        """Charge one v3 process of this photo, in the window if it counts processes."""
        now = time.monotonic()
        with self._lock:
            if in_window and not self._admit(now, in_flight):
                return False
            self._charges[sha256] += 1
            self._counts["processes_charged"] += 1
        if in_window:
            self._remember_place(now)
        return True

    def _remember_place(self, now: float) -> None:
        """v3's place in the window, on disk before the answer leaves (v1's is its order's)."""
        if self.memory is not None:
            self.memory.take_window_place(now)

    def status(self, order: Order) -> tuple[str, list[str]]:
        """The order's status now, and its generated image ids once finished."""
        with self._lock:
            charged_at, generated = order.charged_at, list(order.generated_ids)
        if charged_at is None or not self.shows_charge(charged_at):
            return "idle", []
        done_at = charged_at + self.config.eta_seconds * self.config.time_scale
        if self.results_held or time.monotonic() < done_at:
            return "processing", []
        return "finished", generated

    def result_order(self, generated_id: str) -> Order | None:
        with self._lock:
            return self._results.get(generated_id)

    def upscale(self, generated_id: str) -> float | None:
        """Start upscaling a finished result: seconds until it is ready; None if unknown."""
        order = self.result_order(generated_id)
        if order is None or self.status(order)[0] != "finished":
            return None
        config = self.config
        seconds = config.upscale_seconds
        if seconds is None:
            seconds = config.eta_seconds * config.time_scale
        with self._lock:
            self._upscale_counts[generated_id] += 1
            self._upscales[generated_id] = time.monotonic() + seconds
        return seconds

    def upscaled(self, generated_id: str) -> StoredPhoto | None:
        """The photo an upscale of this result is made from, once it is ready."""
        with self._lock:
            ready = self._upscales.get(generated_id)
            order = self._results.get(generated_id)
        if ready is None or order is None or time.monotonic() < ready:
            return None
        return order.photo

    def result_photo(self, generated_id: str) -> StoredPhoto | None:
        with self._lock:
            order = self._results.get(generated_id)
        if order is None and self.memory is not None:
            order_id = self.memory.order_of_result(generated_id)
            recalled = self._recall(order_id) if order_id is not None else None
            if recalled is not None and generated_id in recalled.generated_ids:
                order = recalled
        return None if order is None else order.photo


def stats_json(stats: SandboxStats) -> dict[str, object]:
    """The stats as a JSON object (the /_sandbox/stats body)."""
    return dataclasses.asdict(stats)


MAX_FAULT_NUMBER = 86400  # a rate or a number of seconds; nan and inf fail the range too


def faults_from_json(fields: object) -> Faults:
    """Faults from a JSON object of its fields; ValueError names what is wrong."""
    if not isinstance(fields, dict):
        raise ValueError("expected a JSON object of Faults fields")
    known = {f.name for f in dataclasses.fields(Faults)}
    if unknown := sorted(set(fields) - known):
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    fields = dict(fields)
    for name, value in fields.items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if name == "paths":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise ValueError("paths must be a list of path prefixes, e.g. ['/v1/catalog/']")
        elif name in ("error_every", "error_first"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0")
        elif name == "seed":
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ValueError("seed must be an integer or null")
        elif not is_number or not 0 <= value <= MAX_FAULT_NUMBER:
            raise ValueError(f"{name} must be a number from 0 to {MAX_FAULT_NUMBER}")
    if "paths" in fields:
        fields["paths"] = tuple(fields["paths"])
    return Faults(**fields)
