"""Who may use the desk: a one-time login link opens a session held in an HttpOnly cookie.

The link printed at start (and each one a browser already in asks for) carries a random token
that works once: the desk answers it with a session cookie (HttpOnly, SameSite=Strict, for the
desk's path only) and sends the browser on to the desk's address without it, so the token leaves
the address bar and the history. Each session has its own CSRF token, which every POST must
carry. Tokens and session ids are kept as hashes: what is in memory opens nothing by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE", "Logins", "Session"]

COOKIE = "aihd_desk"
_TOKEN_BYTES = 32


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    csrf: str = field(repr=False)
    started: float

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Logins:
    """The login tokens not used yet and the sessions they opened (in memory: a restarted
    desk prints a new link)."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._sessions: dict[str, Session] = {}

    def new_token(self) -> str:
        """A token for one login link."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        self._tokens.add(_hash(token))
        return token

    def redeem(self, token: str | None) -> str | None:
        """A new session's id for a token not used before (the token is spent); else None."""
        if not token:
            return None
        hashed = _hash(token)
        if hashed not in self._tokens:
            return None
        self._tokens.discard(hashed)
        session_id = secrets.token_urlsafe(_TOKEN_BYTES)
        self._sessions[_hash(session_id)] = Session(secrets.token_urlsafe(24), time.time())
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        return self._sessions.get(_hash(session_id)) if session_id else None
