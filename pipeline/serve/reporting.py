"""What the service says of itself: ``/healthz`` (can it work?) and ``/metrics`` (how is it
doing?), read in a worker thread on a ledger handle of their own (``reader``)."""

from __future__ import annotations

from pipeline.errors import PipelineError
from pipeline.ledger import Ledger
from pipeline.serve.metrics import Figures, Health
from pipeline.serve.service import Service

__all__ = ["figures", "health"]


def health(service: Service, reader: Ledger) -> Health:
    """Blocking (a worker thread, with a handle of its own): does the ledger answer?"""
    try:
        reader.last_run()
        ledger_ok = True
    except PipelineError:
        ledger_ok = False
    text, at = service.last_error or (None, None)
    return Health(ledger_ok, service.catalog_read, text, at)


def figures(service: Service, reader: Ledger) -> Figures:
    """Blocking, as ``health``."""
    # The account's ledger as a whole: a scope of every served folder cost a comparison
    # per folder and photo at each scrape (a second of CPU with 100 folders of 100).
    first = service.manifests[0]
    window = first.rate_limit
    used = reader.recent_posts(window.per_seconds, service.options.limits.account)
    upscales: dict[str, int] = {}
    for upscale in reader.upscales():
        upscales[upscale.state] = upscales.get(upscale.state, 0) + 1
    return Figures(
        photos={state.value: n for state, n in reader.counts().items()},
        orders_spent=service.counters.orders_spent,
        window_used=len(used),
        window_size=window.orders,
        rate_limited=service.counters.rate_limited,
        retries=service.counters.retries,
        webhooks={**service.dispatcher.counts, "refused": service.refused["refused"]},
        collect_backlog=service.results.backlog,
        result_reads=dict(service.results.reads),
        upscales=upscales,
        folders_watched=service.watching.folders,
    )
