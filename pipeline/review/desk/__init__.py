"""The review desk (issue 25): the review page served live, decisions straight into the ledger.

app.py       mount_review_desk(app, settings): the desk under /review/ of an aiohttp app
             (``aihd serve``'s); run_review_desk: alone (``aihd review MANIFEST --serve``)
settings.py  DeskSettings: the manifests, the ledger, what the command passes in
auth.py      one-time login links -> an HttpOnly, SameSite=Strict session cookie; CSRF tokens
guards.py    Host (DNS rebinding), Origin + CSRF on every POST, CSP on every answer, no CORS
routes.py    the page, its state, decisions, order again, deliver, images, events
live.py      the ledger read for the browsers: progress and changed photos (server-sent events)
images.py    thumbnails and screen-sized views, made on demand, of files the ledger names
worker.py    a ledger handle with a thread of its own
"""

from pipeline.review.desk.app import ReviewDesk, mount_review_desk, run_review_desk
from pipeline.review.desk.settings import DEFAULT_PREFIX, DeskSettings, PlanReorder

__all__ = [
    "DEFAULT_PREFIX",
    "DeskSettings",
    "PlanReorder",
    "ReviewDesk",
    "mount_review_desk",
    "run_review_desk",
]
