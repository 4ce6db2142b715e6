"""The desk's guards, as aiohttp middlewares and a response hook: every request and answer.

- ``Host`` must name this desk: localhost, a loopback address, the address the browser reached
  (the socket's own), the --listen host or this machine's name, on the port it listens on; or
  a proxy's public name given by the command. A page on ``evil.example`` that re-points its
  name at 127.0.0.1 (DNS rebinding) sends ``Host: evil.example``: refused.
- Every page but the login and the style and script needs a session (auth.py).
- Every other method than GET and HEAD needs an ``Origin`` of this desk's own host, the
  session's CSRF token in ``X-Aihd-Csrf`` and a JSON body: a form or a fetch from another site
  can send none of the three.
- Every answer carries a Content-Security-Policy with no inline script, no framing, no
  referrer; none carries a CORS header.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from yarl import URL

from pipeline.review.desk.auth import COOKIE, Logins, Session
from pipeline.review.desk.settings import DeskSettings

__all__ = ["CSP", "CSRF_HEADER", "guards", "harden", "is_loopback", "session_of"]

CSRF_HEADER = "X-Aihd-Csrf"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HARDENING = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_OPEN_ROUTES = frozenset({"desk-login", "desk-asset"})  # reachable before logging in
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_HOST = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]/@\s]+))(?::(?P<port>\d{1,5}))?$"
)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _split(host: str) -> tuple[str, int | None] | None:
    """``host[:port]`` as (name casefolded, port); None when it is no host."""
    found = _HOST.match(host.strip())
    if found is None:
        return None
    name = (found["v6"] or found["name"]).casefold().rstrip(".")
    port = int(found["port"]) if found["port"] else None
    return name, port


def _ip_text(address: str) -> str:
    """An address as the browser would write it: no zone, IPv4 for an IPv4-mapped one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address.casefold()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def is_loopback(host: str) -> bool:
    """``--listen``'s host reaches this machine only (127.0.0.1, ::1, localhost)."""
    name = host.strip("[]").casefold()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _unspecified(name: str) -> bool:
    """0.0.0.0 or ::, "every address": a --listen value, never a name a browser uses."""
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


def _host_allowed(request: web.Request, settings: DeskSettings) -> bool:
    given = _split(request.headers.get(hdrs.HOST, ""))
    if given is None:
        return False
    name, port = given
    for public in settings.public_hosts:
        wanted = _split(public)
        if wanted is not None and wanted[0] == name and wanted[1] in (None, port):
            return True
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname or len(sockname) < 2:
        return False
    if (port if port is not None else 80) != int(sockname[1]):
        return False
    names = set(_LOOPBACK) | {_ip_text(str(sockname[0])), socket.gethostname().casefold()}
    listen = _split(settings.listen_host)
    if listen is not None and not _unspecified(listen[0]):
        names.add(_ip_text(listen[0]))
    return name in names


def _same_origin(request: web.Request) -> bool:
    """The ``Origin`` names the host the request was sent to (already checked by the Host
    guard); http or https, for a desk behind a proxy that speaks HTTPS."""
    origin = request.headers.get(hdrs.ORIGIN, "")
    host = _split(request.headers.get(hdrs.HOST, ""))
    if not origin or origin == "null" or host is None:
        return False
    try:
        url = URL(origin)
    except ValueError:
        return False
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        return False
    default = 443 if url.scheme == "https" else 80
    return (url.host.casefold().rstrip("."), url.port) == (
        host[0],
        host[1] if host[1] is not None else default,
    )


def _refuse(request: web.Request, status: int, why: str) -> web.Response:
    if "/api/" in request.path or request.method not in _SAFE_METHODS:
        return web.json_response({"error": why}, status=status)
    return web.Response(text=f"aihd review desk: {why}\n", status=status)


def session_of(request: web.Request) -> Session:
    """The session the guards found for this request."""
    session = request.get("desk_session")
    assert isinstance(session, Session)
    return session


def guards(
    settings: DeskSettings, logins: Logins, refused_page: Callable[[str], web.Response]
) -> list[Middleware]:
    """The middlewares, outermost first: Host, then the session, then what a POST needs.
    ``refused_page(why)``: the page a browser that is not logged in sees."""

    @web.middleware
    async def host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _host_allowed(request, settings):
            return _refuse(
                request,
                403,
                "refused: the Host header names neither this desk's address nor localhost "
                "(open the link the desk printed)",
            )
        return await handler(request)

    @web.middleware
    async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name in _OPEN_ROUTES:
            return await handler(request)
        session = logins.session(request.cookies.get(COOKIE))
        if session is None:
            why = "This browser is not logged in to the desk (or the desk restarted since)."
            if "/api/" in request.path or request.method not in _SAFE_METHODS:
                return _refuse(request, 403, "refused: not logged in; open the login link")
            return refused_page(why)
        request["desk_session"] = session
        return await handler(request)

    @web.middleware
    async def post_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in _SAFE_METHODS:
            return await handler(request)
        if not _same_origin(request):
            return _refuse(request, 403, "refused: the request comes from another site (Origin)")
        session = request.get("desk_session")
        if not isinstance(session, Session) or not session.csrf_matches(
            request.headers.get(CSRF_HEADER)
        ):
            return _refuse(request, 403, "refused: no valid CSRF token; reload the desk")
        if request.content_type != "application/json":
            return _refuse(request, 415, "refused: send JSON")
        return await handler(request)

    return [host_guard, session_guard, post_guard]


async def harden(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the policy headers on every answer, no CORS header on any."""
    for name, value in _HARDENING.items():
        response.headers[name] = value
    response.headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
    for name in [n for n in response.headers if n.lower().startswith("access-control-")]:
        del response.headers[name]
