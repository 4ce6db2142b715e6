"""The webhook secret: the unguessable part of the URL the dashboard posts to.

The vendor signs no webhook (docs/api/AIHOMEDESIGN_V3.md 7), so the path is all that keeps
strangers from knocking, and even a right one is only a hint (hooks.py re-reads everything).
It comes from ``AIHD_WEBHOOK_SECRET`` (several machines behind one URL share it), or is
generated once and kept in the state folder, readable by its owner only. It never appears in
a log line, an error, the metrics or a page: only ``--print-webhook-url`` shows it, on request.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from pipeline.errors import UsageError

__all__ = ["SECRET_ENV", "webhook_secret"]

SECRET_ENV = "AIHD_WEBHOOK_SECRET"  # noqa: S105 -- the variable's name, not a secret
SECRET_FILE = "webhook-secret"  # noqa: S105 -- the file's name, not a secret
MIN_LENGTH = 24
_SHAPE = re.compile(r"[A-Za-z0-9_-]+")


def webhook_secret(state_folder: Path, env: dict[str, str] | None = None) -> str:
    """The secret from the environment, or the one kept in ``state_folder`` (made once)."""
    env = dict(os.environ) if env is None else env
    if given := env.get(SECRET_ENV, "").strip():
        _check(given, f"{SECRET_ENV}")
        return given
    path = state_folder / SECRET_FILE
    try:
        kept = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _make(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the webhook secret in {path}: {exc}") from None
    _check(kept, str(path))
    return kept


def _make(path: Path) -> str:
    """A new secret, written owner-only; if another process wrote one first, that one."""
    secret = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise UsageError(f"cannot keep the webhook secret in {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    return secret


def _check(secret: str, where: str) -> None:
    if len(secret) < MIN_LENGTH or not _SHAPE.fullmatch(secret):
        raise UsageError(
            f"the webhook secret in {where} must be at least {MIN_LENGTH} characters of "
            "letters, digits, '-' and '_' (a URL path part): e.g. the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
