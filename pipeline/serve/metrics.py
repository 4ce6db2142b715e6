"""``GET /metrics`` in Prometheus' text format, and what ``GET /healthz`` says.

The figures are read when scraped (photos by state from the ledger, the rest from the
service's counters), into a registry of the service's own: nothing global, nothing kept
between scrapes. Names follow Prometheus' conventions (``_total`` for counters). No figure
carries a path, an id, the key or the webhook secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Figures", "Health", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Figures:
    """What the service reports; each field one metric (see ``_families``)."""

    photos: Mapping[str, int]  # the account ledger's photos by state
    orders_spent: int  # orders this process paid for (confirmed by the API)
    window_used: int  # the account's order window: slots taken in the last per_seconds
    window_size: int
    rate_limited: int  # 429s this process met
    retries: int
    webhooks: Mapping[str, int]  # accepted, ignored, refused
    collect_backlog: int  # charged photos whose result is not downloaded yet
    result_reads: Mapping[str, int]  # reads of orders for results: "webhook" or "poll"
    upscales: Mapping[str, int] = field(default_factory=dict)  # by state
    folders_watched: int = 0


@dataclass(frozen=True, slots=True)
class Health:
    """``/healthz``: can the service work? Its ledger answers, the catalog was read, and the
    last error it met (a class of error and when: never a secret)."""

    ledger: bool
    catalog: bool
    last_error: str | None
    last_error_at: str | None

    @property
    def ok(self) -> bool:
        return self.ledger and self.catalog


class _Live(Collector):
    def __init__(self, figures: Callable[[], Figures]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from _families(self._figures())


def _families(f: Figures) -> Iterator[Metric]:
    photos = GaugeMetricFamily(
        "aihd_photos", "Photos of the account's ledger by state.", labels=["state"]
    )
    for state, count in sorted(f.photos.items()):
        photos.add_metric([state], count)
    yield photos
    yield CounterMetricFamily(
        "aihd_orders_spent", "Orders this process paid for (confirmed).", value=f.orders_spent
    )
    yield GaugeMetricFamily(
        "aihd_window_slots_used",
        "Slots of the account's order window taken in its last per_seconds.",
        value=f.window_used,
    )
    yield GaugeMetricFamily(
        "aihd_window_slots", "Orders the account's window allows.", value=f.window_size
    )
    yield CounterMetricFamily(
        "aihd_rate_limited", "429 answers this process met.", value=f.rate_limited
    )
    yield CounterMetricFamily("aihd_retries", "Requests tried again.", value=f.retries)
    hooks = CounterMetricFamily(
        "aihd_webhooks", "Webhooks received, by outcome.", labels=["outcome"]
    )
    for outcome in ("accepted", "ignored", "refused"):
        hooks.add_metric([outcome], f.webhooks.get(outcome, 0))
    yield hooks
    yield GaugeMetricFamily(
        "aihd_collect_backlog",
        "Charged photos whose result is not downloaded yet.",
        value=f.collect_backlog,
    )
    reads = CounterMetricFamily(
        "aihd_result_reads", "Orders read for their results, by cause.", labels=["cause"]
    )
    for cause in ("webhook", "poll"):
        reads.add_metric([cause], f.result_reads.get(cause, 0))
    yield reads
    upscales = GaugeMetricFamily("aihd_upscales", "Upscales by state.", labels=["state"])
    for state, count in sorted(f.upscales.items()):
        upscales.add_metric([state], count)
    yield upscales
    yield GaugeMetricFamily(
        "aihd_folders_watched", "Folders of the manifests watched.", value=f.folders_watched
    )


def render(figures: Callable[[], Figures]) -> bytes:
    """The figures as Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Live(figures))
    return generate_latest(registry)
