"""``aihd serve``: the always-on studio process (docs/SPEC.md "Always on").

main.py          run_service: the web side, the API client, the service, in that order
service.py       the parts together: runners fed by watching, results, upscales, chores
watching.py      folders -> complete photos -> each manifest's runner (ordering.Runner)
watcher.py       watchfiles (inotify, or polling for network mounts); changed path -> folder
completeness.py  quiet period, two equal looks or a .done marker; partial names never
results.py       collect as results are ready: webhook first, polling as the fallback
upscaling.py     v1 upscales: an intent before each POST; placed when the webhook comes
hooks.py         POST /hooks/<secret>: unsigned webhooks as hints, answered at once
dispatch.py      a hint -> the ledger's photo or upscale (others ignored and counted)
secret.py        the webhook secret: AIHD_WEBHOOK_SECRET, or made once in the state folder
metrics.py       /metrics (Prometheus text) and what /healthz says
web.py           the aiohttp app (room for the review desk's routes)
"""

from pipeline.serve.main import run_service
from pipeline.serve.secret import SECRET_ENV, webhook_secret
from pipeline.serve.service import ServeOptions, Service

__all__ = ["SECRET_ENV", "ServeOptions", "Service", "run_service", "webhook_secret"]
