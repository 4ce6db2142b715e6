"""The review desk as an aiohttp sub-application: ``mount_review_desk`` puts it on an app.

``aihd serve`` mounts it on its own app beside the webhooks; ``aihd review MANIFEST --serve``
runs it alone (``run_review_desk``). Either way it is the same desk, guarded the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress

from aiohttp import web

from pipeline.errors import UsageError
from pipeline.ledger import Ledger
from pipeline.review.desk.auth import Logins
from pipeline.review.desk.guards import guards, harden
from pipeline.review.desk.images import DeskImages, Renditions
from pipeline.review.desk.live import Live
from pipeline.review.desk.routes import add_routes
from pipeline.review.desk.settings import DeskSettings
from pipeline.review.desk.state import StateDocument
from pipeline.review.desk.worker import LedgerWorker
from pipeline.review.sheet import Sheet
from pipeline.review.templating import render

__all__ = ["ReviewDesk", "mount_review_desk", "run_review_desk"]

SHUTDOWN_SECONDS = 1.0  # a stop waits this long at most for answers in flight


class ReviewDesk:
    """One desk: its login links, its ledger handles, its live view of the ledger."""

    def __init__(self, settings: DeskSettings) -> None:
        if not settings.manifests:
            raise UsageError("the review desk needs at least one manifest")
        self.settings = settings
        self.logins = Logins()
        self.images = DeskImages()
        self.sheet = Sheet(settings.manifests, self.images, offline=False)
        self.renditions = Renditions(settings.manifests)
        self.reader = LedgerWorker(settings.open_ledger, "read")
        self.writer = LedgerWorker(
            settings.open_ledger, "write"
        )  # decisions never queue behind reads
        self.live = Live(self.reader, self.sheet, settings.poll_seconds)
        self.document = StateDocument(self.sheet)

    def login_url(self, base_url: str) -> str:
        """A one-time login link on ``base_url`` (``http://127.0.0.1:8787``): it lets one
        browser in, once. Print it to whoever started the desk; never log it elsewhere."""
        token = self.logins.new_token()
        return f"{base_url.rstrip('/')}{self.settings.prefix}/login?token={token}"

    async def source(self, photo_id: int) -> tuple[int, str, str | None] | None:
        """The files the ledger names for a photo of the desk's manifests, else None."""
        found = self.images.sources.get(photo_id)
        if found is None:  # a photo found since the page was read: read the ledger again
            await self.reader.call(self._note_rows)
            found = self.images.sources.get(photo_id)
        return found

    def _note_rows(self, ledger: Ledger) -> None:
        for manifest, row in self.sheet.rows(ledger):
            self.images.note(manifest, row)

    async def require_photos(self, photo_ids: list[int]) -> None:
        """Refuse (UsageError) a photo that is not one of the desk's manifests'."""
        for photo_id in photo_ids:
            await self.manifest_of(photo_id)

    async def manifest_of(self, photo_id: int) -> int:
        """The number of the desk's manifest that holds the photo; UsageError if none."""
        found = await self.source(photo_id)
        if found is None:
            raise UsageError(f"photo {photo_id} is not a photo of this desk's manifests")
        return found[0]

    def refused(self, reason: str, status: int = 403) -> web.Response:
        """The page a browser that may not come in sees: why, and how to log in."""
        html = render("refused.html", title="aihd review desk", reason=reason, assets="assets/")
        return web.Response(text=html, status=status, content_type="text/html")

    async def close(self) -> None:
        await self.live.close()
        await self.reader.close()
        await self.writer.close()
        self.renditions.close()


def mount_review_desk(app: web.Application, settings: DeskSettings) -> ReviewDesk:
    """Mount the review desk under ``settings.prefix`` (``/review/``) of ``app``, aiohttp's
    own application, before it starts; return the desk.

    ``aihd serve`` calls this for its app (from the app layer, which passes the account's
    ledger and ``plan_reorder``: review may not import ordering); ``aihd review --serve`` for
    one of its own (``run_review_desk``). The desk guards its own routes (Host, login, Origin
    and CSRF, CSP: guards.py) and nothing else of ``app``; its ledger handles close on
    ``app``'s cleanup, its event streams end on ``app``'s shutdown. Once ``app`` listens, print
    ``desk.login_url(base_url)``: the one-time link that lets the first browser in.
    """
    desk = ReviewDesk(settings)
    sub = web.Application(middlewares=guards(settings, desk.logins, desk.refused))
    sub.on_response_prepare.append(harden)
    add_routes(sub, desk)

    async def shut(_: web.Application) -> None:
        await desk.live.close()  # event streams end, so the server's stop does not wait on them

    async def clean(_: web.Application) -> None:
        await desk.close()

    prefix = settings.prefix.rstrip("/")

    async def to_desk(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{prefix}/")

    app.router.add_get(prefix, to_desk)  # before the sub-app: it would answer 404 for it
    sub.on_shutdown.append(shut)
    sub.on_cleanup.append(clean)
    app.add_subapp(prefix, sub)
    return desk


async def run_review_desk(
    settings: DeskSettings,
    listen: tuple[str, int],
    stop: asyncio.Event,
    on_listening: Callable[[str, str], None],
) -> None:
    """``aihd review --serve``: the desk alone on ``listen`` (port 0: any free one) until
    ``stop``; ``on_listening(url, login_url)`` once it listens."""
    app = web.Application()
    desk = mount_review_desk(app, settings)
    prefix = settings.prefix.rstrip("/")

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{prefix}/")

    app.router.add_get("/", home)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, listen[0], listen[1])
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}; choose "
                "another --listen (port 0: any free one)"
            ) from None
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        if _unspecified(str(host)):
            shown = "127.0.0.1"  # every address: the link opens here, on this machine
        url = f"http://{shown}:{port}"
        on_listening(url, desk.login_url(url))
        with suppress(asyncio.CancelledError):
            await stop.wait()
    finally:
        await runner.cleanup()


def _unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::")  # noqa: S104  (a check of --listen, not a bind)
