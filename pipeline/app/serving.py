"""``aihd serve`` and ``aihd upscale``: the account's ledger and window, the API client, the
review desk on the service's own address, the record of the service in the ledger's runs; the
service itself is pipeline/serve/."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from pipeline.api.records import is_v3_service
from pipeline.api.v1 import Timeouts
from pipeline.app.desk import desk_settings
from pipeline.app.session import ApiSettings, api_client, window_history
from pipeline.errors import UsageError
from pipeline.ledger import State, open_ledger
from pipeline.manifest.accounts import state_folder
from pipeline.manifest.loader import Manifest
from pipeline.ordering.projects import LedgerProjects
from pipeline.ordering.window import OrderWindow
from pipeline.review.desk import ReviewDesk, mount_review_desk
from pipeline.serve import ServeOptions, Service, run_service, webhook_secret
from pipeline.stopping import StopSwitch

__all__ = ["ServeRequest", "serve_account", "webhook_url", "wish_upscales"]

log = logging.getLogger("aihd")


@dataclass(frozen=True, slots=True)
class ServeRequest:
    manifests: tuple[Manifest, ...]
    ledger_path: Path | str
    listen: tuple[str, int]
    options: ServeOptions
    request_timeout: float
    command: str
    secret: str = field(repr=False)  # the webhook secret (serve/secret.py): never shown


def one_account(manifests: tuple[Manifest, ...]) -> None:
    """One process serves one account: one ledger, one key, one order window."""
    first = manifests[0]
    for other in manifests[1:]:
        for what, mine, theirs in (
            ("account", first.account, other.account),
            ("ledger", first.ledger, other.ledger),
            ("api_key_env", first.api_key_env, other.api_key_env),
            ("rate_limit", first.rate_limit, other.rate_limit),
        ):
            if mine != theirs:
                raise UsageError(
                    f"{other.path} and {first.path} differ in {what}: one `aihd serve` serves "
                    "one account's ledger and window; start one per account"
                )


def webhook_url(public_url: str) -> str:
    """What to paste in the dashboard's webhook setting (it holds the secret)."""
    from yarl import URL

    url = URL(public_url.strip())
    if url.scheme != "https" or not url.host:
        raise UsageError(
            f"--public-url {public_url!r}: give the HTTPS address your proxy serves, e.g. "
            "https://studio.example (the vendor posts webhooks to HTTPS only)"
        )
    return str(url.with_path(url.path.rstrip("/") + "/hooks/" + webhook_secret(state_folder())))


async def serve_account(
    request: ServeRequest,
    settings: ApiSettings,
    stop: StopSwitch,
    reload: asyncio.Event,
    on_login: Callable[[str], None] = lambda login_url: None,
) -> None:
    """Serve the manifests until stopped; recorded in the ledger's runs like a run. The review
    desk is served at /review/ of the same address; ``on_login`` gets its one-time login link
    once the service listens (for the one who started it: never logged)."""
    first = request.manifests[0]
    desks: list[ReviewDesk] = []
    services: list[Service] = []

    def look_again(paths: Sequence[str]) -> None:
        for service in services:  # none yet: the service's start hands every file on anyway
            service.watching.look_again(paths)

    desk = desk_settings(
        request.manifests,
        request.ledger_path,
        listen_host=request.listen[0],
        reordered_by=_reordered_by(request),
        on_reordered=look_again,
    )

    def add_desk(app: web.Application) -> None:
        desks.append(mount_review_desk(app, desk))

    ledger = open_ledger(request.ledger_path)
    try:
        run_id = ledger.start_run(request.command)
        window = OrderWindow(first.rate_limit.orders, first.rate_limit.per_seconds)
        answer_within = 2 * request.request_timeout + 5
        window.remember(
            window_history(
                ledger.recent_posts(
                    first.rate_limit.per_seconds + answer_within, request.options.limits.account
                ),
                answer_within,
            )
        )
        projects = LedgerProjects(ledger, first.account)
        timeouts = Timeouts(read=request.request_timeout)
        outcome = "crashed"

        def on_listening(url: str) -> None:
            folders = sum(len(m.folders) for m in request.manifests)
            log.info(
                "aihd serve: %d folders of %d manifests, ledger %s; listening on %s "
                "(POST /hooks/<secret>, GET /healthz, GET /metrics, the review desk at %s/)",
                folders,
                len(request.manifests),
                ledger.path,
                url,
                desk.prefix,
            )
            if desks:
                on_login(desks[0].login_url(_browsable(url)))

        try:
            await run_service(
                request.manifests,
                lambda: open_ledger(request.ledger_path),
                lambda hooks: api_client(
                    settings,
                    timeouts,
                    projects=projects,
                    max_in_flight=first.rate_limit.orders,
                    ledger_path=request.ledger_path,
                    webhook_url=hooks if settings.sandbox else None,
                ),
                window,
                request.options,
                secret=request.secret,
                listen=request.listen,
                stop=stop,
                reload=reload,
                on_listening=on_listening,
                add_routes=[add_desk],
                on_service=services.append,
            )
            outcome = "stopped"
        finally:
            ledger.finish_run(run_id, outcome, {"stopped_at": time.time()})
    finally:
        ledger.close()


def _reordered_by(request: ServeRequest) -> str:
    """Who orders a photo the desk orders again: this service, once the photo's folder has
    been quiet for the quiet period (the desk tells it at once: ``look_again``)."""
    quiet = request.options.quiet_seconds(request.manifests)
    shown = f"{quiet / 60:g}m" if quiet >= 60 else f"{quiet:g}s"
    # The page says "...; <this> orders it." and "ordered again by <this>."
    return f"the running aihd serve, after its quiet period ({shown})"


def _browsable(url: str) -> str:
    """The address a browser on this machine opens: every address (0.0.0.0, ::) is also
    127.0.0.1, a name the desk answers to."""
    for unspecified in ("//0.0.0.0:", "//[::]:"):
        url = url.replace(unspecified, "//127.0.0.1:")
    return url


def wish_upscales(manifest: Manifest, ledger_path: Path | str) -> tuple[int, int, int]:
    """``aihd upscale``: wish the manifest's completed photos upscaled. Returns (new wishes,
    wished before, photos of those folders not completed yet)."""
    if manifest.api != "v1":
        raise UsageError(
            f"{manifest.path}: upscale is an option of the v1 API only (v3 has no upscale call)"
        )
    ledger = open_ledger(ledger_path)
    try:
        scope = [str(folder.path) for folder in manifest.folders]
        rows = [r for r in ledger.photos(scope=scope) if not is_v3_service(r.service)]
        done = [r.id for r in rows if r.state is State.COMPLETED]
        added = ledger.wish_upscales(done, "aihd upscale")
        waiting = sum(
            r.state in (State.PENDING, State.UPLOADED, State.SUBMITTING, State.SUBMITTED)
            for r in rows
        )
        return added, len(done) - added, waiting
    finally:
        ledger.close()
