"""The desk's pages and calls, under its prefix (``/review/``):

GET  /                    the desk (review.html, as the static page, served)
GET  /login?token=…       a one-time login link: a session cookie, then on to / without it
GET  /assets/NAME         review.js, review.css
GET  /api/state           every photo of the manifests, with the day's progress (JSON)
GET  /api/events          what changed since (server-sent events: progress, photos)
GET  /photos/ID/SIDE/SIZE a photo's original ("before") or result ("after"), thumb or large
POST /api/decisions       {photo_ids, decision: approved | rejected | null, reason}
POST /api/reorder         {photo_id[, go, order_id]}: what ordering again costs; with go, do it
POST /api/deliver         {listing}: deliver a listing whose photos are all decided
POST /api/login-links     a one-time login link for another browser
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from pipeline.errors import PipelineError, UsageError
from pipeline.filenames import shell_join, shown
from pipeline.ledger import Decision, Ledger, PhotoRow, State
from pipeline.manifest.listings import Listing
from pipeline.manifest.profiles import find_profile
from pipeline.review.decisions import clean_reason, reorder_command
from pipeline.review.deliver import DeliveryReport
from pipeline.review.deliver import deliver as deliver_photos
from pipeline.review.desk.auth import COOKIE
from pipeline.review.desk.guards import session_of
from pipeline.review.desk.images import SIDES, SIZES
from pipeline.review.desk.live import Snapshot, take_snapshot
from pipeline.review.templating import ASSETS, asset_bytes, render

if TYPE_CHECKING:
    from pipeline.review.desk.app import ReviewDesk

__all__ = ["DECISION_SOURCE", "add_routes"]

DECISION_SOURCE = "review desk"  # the ledger's reviews.source of a decision made here
MAX_PHOTOS_AT_ONCE = 10_000
KEEPALIVE_SECONDS = 15.0
_TYPES = {"review.css": "text/css", "review.js": "text/javascript"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _answers(handler: Handler) -> Handler:
    """A ledger or usage problem as a JSON answer with its one line, never a traceback."""

    async def answered(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UsageError as exc:
            return _json({"error": shown(str(exc))}, 400)
        except PipelineError as exc:
            return _json({"error": shown(f"the ledger cannot be used now: {exc}")}, 503)

    return answered


async def _body(request: web.Request) -> dict[str, object]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request's body is not JSON") from None
    if not isinstance(body, dict):
        raise UsageError("the request's body must be a JSON object")
    return body


def _photo_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError("a photo is named by its number (photo_id)")
    return value


class _Routes:
    def __init__(self, desk: ReviewDesk) -> None:
        self.desk = desk
        self.settings = desk.settings
        self._delivering = asyncio.Lock()

    # -- pages -----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        names = ", ".join(shown(m.path.name) for m in self.settings.manifests)
        html = render(
            "review.html",
            served=True,
            title=f"aihd review desk: {names}",
            heading=f"aihd review desk: {names}",
            assets="assets/",
            csrf=session_of(request).csrf,
            apply_command="",
        )
        return web.Response(text=html, content_type="text/html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        session_id = self.desk.logins.redeem(request.query.get("token"))
        if session_id is None:
            return self.desk.refused(
                "This login link is wrong, or was used already: each link lets one browser "
                "in, once."
            )
        # 303: the browser asks for the desk itself, so the token leaves the address bar.
        response = web.HTTPSeeOther(f"{self.settings.prefix}/")
        response.set_cookie(
            COOKIE,
            session_id,
            path=f"{self.settings.prefix}/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(
            body=asset_bytes(name),
            content_type=_TYPES[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    # -- reading ---------------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.StreamResponse:
        sheet, document = self.desk.sheet, self.desk.document

        def read(ledger: Ledger) -> tuple[str, Snapshot]:
            snapshot = take_snapshot(sheet, ledger)
            text = document.text(
                ledger,
                snapshot,
                served=True,
                reordered_by=self._reordered_by(0),
                delivery_profile=self.settings.delivery_profile,
            )
            return text, snapshot

        text, snapshot = await self.desk.reader.call(read)
        self.desk.live.offer(snapshot)
        response = web.Response(text=text, content_type="application/json")
        response.enable_compression()
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        queue = self.desk.live.subscribe()
        try:
            await response.write(b"retry: 3000\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                if event is None:
                    break
                name, data = event
                await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.desk.live.unsubscribe(queue)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def photo_image(self, request: web.Request) -> web.StreamResponse:
        photo_id = int(request.match_info["photo_id"])
        side, size = request.match_info["side"], request.match_info["size"]
        if side not in SIDES or size not in SIZES:
            raise web.HTTPNotFound()
        found = await self.desk.source(photo_id)
        if found is None:
            raise web.HTTPNotFound(text="not a photo of this desk")
        manifest, original, result = found
        chosen = original if side == "before" else result
        if chosen is None:
            raise web.HTTPNotFound(text="no result collected yet")
        made = await self.desk.renditions.file(manifest, Path(chosen), size)
        if made is None:
            raise web.HTTPNotFound(text="the file cannot be read as an image")
        # The URL carries the photo's version: a new result is a new URL.
        return web.FileResponse(made, headers={"Cache-Control": "private, max-age=86400"})

    # -- writing ---------------------------------------------------------------------------

    async def decisions(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        given = body.get("photo_ids")
        if not isinstance(given, list) or not 0 < len(given) <= MAX_PHOTOS_AT_ONCE:
            raise UsageError(f"photo_ids: a list of 1 to {MAX_PHOTOS_AT_ONCE} photo numbers")
        photo_ids = [_photo_id(value) for value in given]
        said = body.get("decision")
        if said is not None and said not in {d.value for d in Decision}:
            raise UsageError('decision: "approved", "rejected" or null (undecided)')
        await self.desk.require_photos(photo_ids)
        decision = Decision(said) if said is not None else None
        reason = clean_reason(body.get("reason")) if decision is Decision.REJECTED else None

        def record(ledger: Ledger) -> int:
            if decision is None:
                return ledger.clear_reviews(photo_ids)
            return ledger.record_reviews(photo_ids, decision, DECISION_SOURCE, reason)

        recorded = await self.desk.writer.call(record)
        return _json({"recorded": recorded, "decision": said, "reason": reason})

    async def reorder(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        photo_id = _photo_id(body.get("photo_id"))
        manifest_number = await self.desk.manifest_of(photo_id)
        manifest = self.settings.manifests[manifest_number]
        plan_reorder = self.settings.plan_reorder

        def plan(ledger: Ledger) -> tuple[PhotoRow, list[str], list[int]]:
            row = ledger.get(photo_id)
            lines, photo_ids = plan_reorder(ledger, [row.path])
            return row, lines, photo_ids

        row, lines, photo_ids = await self.desk.reader.call(plan)
        answer: dict[str, object] = {
            "lines": [shown(line) for line in lines],
            "orders": len(photo_ids),
            "order_id": row.order_id or "",
            "command": reorder_command(manifest, [row.path]),
            "then": self._reordered_by(manifest_number),
        }
        if body.get("go") is not True:
            return _json(answer)
        if not photo_ids:
            return _json({**answer, "error": shown("; ".join(lines))}, 409)
        if body.get("order_id") != (row.order_id or ""):
            return _json(
                {**answer, "error": "this photo changed since you looked: look at it again"}, 409
            )
        done = await self.desk.writer.call(lambda ledger: ledger.reorder(photo_ids))
        self.settings.on_reordered([row.path for row in done])
        return _json({**answer, "reordered": len(done)})

    async def deliver(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        key = body.get("listing")
        found = self.desk.sheet.listing(key) if isinstance(key, str) else None
        if found is None:
            raise UsageError("listing: not a listing of this desk")
        manifest_number, listing = found
        names = {folder.name for folder in listing.folders}

        def undecided(ledger: Ledger) -> tuple[int, int]:
            rows = [
                row
                for m, row in self.desk.sheet.rows(ledger)
                if m == manifest_number and row.folder in names
            ]
            reviews = ledger.reviews()
            completed = [row for row in rows if row.state is State.COMPLETED]
            approved = sum(
                1
                for row in completed
                if row.id in reviews and reviews[row.id].decision is Decision.APPROVED
            )
            return sum(1 for row in completed if row.id not in reviews), approved

        left, approved = await self.desk.reader.call(undecided)
        if left:
            return _json(
                {"error": f"{shown(listing.name)}: {left} photos are not decided yet"}, 409
            )
        if not approved:
            return _json({"error": f"{shown(listing.name)}: no photo is approved"}, 409)
        async with self._delivering:  # one delivery at a time: each renders every photo
            report = await asyncio.to_thread(self._deliver, manifest_number, listing)
        # Keys are folders (or, in older code, listing names under report.folder).
        delivered = [
            {"into": shown(str(report.folder / where)), "photos": count}
            for where, count in report.delivered.items()
        ]
        failed = [shown(line) for line in report.failed]
        answer: dict[str, object] = {"delivered": delivered, "failed": failed}
        if failed:
            answer["error"] = f"{len(failed)} photos not delivered: " + "; ".join(failed[:3])
        return _json(answer, 500 if report.failed else 200)

    def _deliver(self, manifest_number: int, listing: Listing) -> DeliveryReport:
        """In a thread, on a ledger handle of its own: ``aihd deliver``'s code, for the one
        listing (its manifest narrowed to the listing's folders)."""
        manifest = self.settings.manifests[manifest_number]
        profile = find_profile(self.settings.delivery_profile, manifest.delivery_profiles)
        folder = self.settings.delivery_folder or manifest.path.parent / "delivery"
        ledger = self.settings.open_ledger()
        try:
            narrowed = replace(manifest, folders=listing.folders)
            return deliver_photos(narrowed, ledger, profile, folder)
        except OSError as exc:
            raise UsageError(f"{folder}: cannot write the delivery: {exc.strerror}") from None
        finally:
            ledger.close()

    async def login_link(self, request: web.Request) -> web.StreamResponse:
        # The Origin was checked against the Host: the address this browser reached us at.
        base = request.headers["Origin"]
        return _json({"url": self.desk.login_url(base)})

    def _reordered_by(self, manifest_number: int) -> str:
        if self.settings.reordered_by:
            return self.settings.reordered_by
        manifest = self.settings.manifests[manifest_number]
        return "the next " + shell_join(["aihd", "run", str(manifest.path)])


def add_routes(app: web.Application, desk: ReviewDesk) -> None:
    """The desk's routes on its own (sub-)application."""
    routes = _Routes(desk)
    router = app.router
    router.add_get("/", routes.page, name="desk-page")
    router.add_get("/login", routes.login, name="desk-login")
    router.add_get("/assets/{name}", routes.asset, name="desk-asset")
    router.add_get("/api/state", _answers(routes.state))
    router.add_get("/api/events", routes.events)
    router.add_get(r"/photos/{photo_id:\d{1,18}}/{side}/{size}", _answers(routes.photo_image))
    router.add_post("/api/decisions", _answers(routes.decisions))
    router.add_post("/api/reorder", _answers(routes.reorder))
    router.add_post("/api/deliver", _answers(routes.deliver))
    router.add_post("/api/login-links", routes.login_link)
