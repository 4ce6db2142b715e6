"""The local emulator's webhooks: what the account's dashboard URL would receive.

Shapes from docs/api/AIHOMEDESIGN_API.md 2.6 (v1 generated image), 2.7 (v1 upscale) and
AIHOMEDESIGN_V3.md 7 (v3 ``process.completed``). The real service signs nothing, may send a
webhook twice, and (v3) retries one answered with anything but a 2xx; the switches here play
each of those on demand: duplicates, deliveries out of order, retries on a non-2xx, and several
receivers (machines behind one URL) taking turns or all receiving each webhook.
"""

from __future__ import annotations

__all__ = ["Spread", "WebhookSender", "Webhooks", "webhooks_from_json"]

import asyncio
import dataclasses
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

Spread = Literal["round_robin", "every"]
_NOT_READY_TRIES = 100
_NOT_READY_PAUSE = 0.01
Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Webhooks:
    """Where and how the emulator sends webhooks; no ``urls``: none are sent."""

    urls: tuple[str, ...] = ()
    spread: Spread = "round_robin"  # several urls: each webhook to the next, or to every one
    duplicates: int = 0  # further copies of each webhook, each delivered like the first
    out_of_order_seconds: float = 0.0  # each delivery waits a random 0..this first
    retries: int = 3  # further tries of a delivery answered non-2xx, or not answered
    retry_seconds: float = 0.2  # the pause before the first retry; it doubles
    timeout_seconds: float = 10.0  # v3: a receiver must answer within 10 s
    seed: int | None = None


def webhooks_from_json(fields: object) -> Webhooks:
    """Webhooks from a JSON object of its fields (others default); ValueError says why."""
    if not isinstance(fields, dict):
        raise ValueError("expected a JSON object of Webhooks fields")
    known = {f.name for f in dataclasses.fields(Webhooks)}
    if unknown := sorted(set(fields) - known):
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    values = dict(fields)
    urls = values.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ValueError("urls must be a list of URLs")
    values["urls"] = tuple(urls)
    if values.get("spread", "round_robin") not in ("round_robin", "every"):
        raise ValueError("spread must be round_robin or every")
    for name in ("duplicates", "retries", "out_of_order_seconds", "retry_seconds"):
        value = values.get(name, 0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    return Webhooks(**values)


class WebhookSender:
    """Sends webhooks from the emulator's event loop; settings and counts are thread-safe."""

    def __init__(self, settings: Webhooks) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._turn = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.counts = {"sent": 0, "answered_2xx": 0, "refused": 0, "unanswered": 0}

    @property
    def settings(self) -> Webhooks:
        with self._lock:
            return self._settings

    def configure(self, settings: Webhooks) -> None:
        with self._lock:
            self._settings = settings
            self._rng = random.Random(settings.seed)
            self._turn = 0

    def later_each(self, delay: float, payloads: Callable[[], list[Payload] | None]) -> None:
        """Send each of ``payloads()`` after ``delay`` seconds (call from a handler, in the
        emulator's loop); they are made then, from the order as it stands. None: not ready
        yet (a timer may fire a little early): asked again a moment later."""
        if not self.settings.urls:
            return
        self._keep(asyncio.ensure_future(self._after(delay, payloads)))

    async def _after(self, delay: float, payloads: Callable[[], list[Payload] | None]) -> None:
        await asyncio.sleep(max(0.0, delay))
        for _ in range(_NOT_READY_TRIES):
            if (bodies := payloads()) is not None:
                for body in bodies:
                    self._start(body)
                return
            await asyncio.sleep(_NOT_READY_PAUSE)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        # Kept until done, and cancelled at close: nothing is sent after the emulator stops.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, body: Payload) -> None:
        settings = self.settings
        if not settings.urls:
            return
        for _ in range(1 + settings.duplicates):
            for url in self._targets(settings):
                self._keep(asyncio.ensure_future(self._deliver(url, body, settings)))

    def _targets(self, settings: Webhooks) -> list[str]:
        if settings.spread == "every":
            return list(settings.urls)
        with self._lock:
            url = settings.urls[self._turn % len(settings.urls)]
            self._turn += 1
        return [url]

    async def _deliver(self, url: str, body: Payload, settings: Webhooks) -> None:
        if settings.out_of_order_seconds > 0:
            with self._lock:
                wait = self._rng.uniform(0, settings.out_of_order_seconds)
            await asyncio.sleep(wait)
        pause = settings.retry_seconds
        for attempt in range(1 + settings.retries):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
            self._count("sent")
            try:
                session = self._open()
                timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
                async with session.post(url, json=body, timeout=timeout) as answer:
                    await answer.read()
                    if 200 <= answer.status < 300:
                        self._count("answered_2xx")
                        return
                    self._count("refused")
            except (aiohttp.ClientError, TimeoutError, OSError):
                self._count("unanswered")

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    async def close(self) -> None:
        """Stop every delivery not yet made; close the session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
