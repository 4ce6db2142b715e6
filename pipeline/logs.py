"""Logging for unattended runs: timestamped lines on stderr and in ``--log-file``, key redacted.

A log file that cannot be written (a full disk) is never a "--- Logging error ---" traceback:
the first failure is kept, the CLI reports it in one line and exits non-zero. The file is
tried once when it is opened, so a disk that is already full stops the command before it
spends anything.
"""

from __future__ import annotations

__all__ = ["log_file_failure", "setup_logging"]

import logging
import sys
from contextlib import suppress
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.filenames import shown

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _Redact(logging.Filter):
    """Replace the API key (and the webhook secret) wherever they would appear in a line."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        for secret in self._secrets:
            if secret in record.getMessage():
                record.msg = record.getMessage().replace(secret, "<redacted>")
                record.args = None
        return True


class _Shown(logging.Formatter):
    """A log line with the bytes of file names that are not UTF-8 written ``\\xNN``: a log
    file (UTF-8) and a terminal take it, where the raw name would be a logging error."""

    def format(self, record: logging.LogRecord) -> str:
        return shown(super().format(record))


class _LogFile(logging.FileHandler):
    """A log file that keeps its first write error for the CLI instead of printing it."""

    failure: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.failure is None:  # after a failure the file is given up, not retried per line
            super().emit(record)

    def close(self) -> None:
        with suppress(OSError):  # closing flushes what a full disk would not take
            super().close()

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failure is None:
            exc = sys.exc_info()[1]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.failure = f"--log-file {self.baseFilename}: cannot write: {reason}"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stderr; a stderr that cannot be written has no one to tell."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def log_file_failure() -> str | None:
    """Why the log file could not be written (one line), or None if every line was."""
    for handler in logging.getLogger("aihd").handlers:
        if isinstance(handler, _LogFile) and handler.failure is not None:
            return handler.failure
    return None


def setup_logging(
    log_file: Path | None, *, verbose: bool, secret: str, also_secret: str = ""
) -> None:
    """Log lines go to stderr when there is no progress bar, and always to ``log_file``;
    ``secret`` (the API key) and ``also_secret`` (aihd serve's webhook secret) never do."""
    logger = logging.getLogger("aihd")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    redact = _Redact(secret, also_secret)
    stderr = _Stderr(sys.stderr)
    stderr.setLevel(logging.INFO if verbose else logging.WARNING)
    stderr.setFormatter(_Shown(_FORMAT, "%Y-%m-%dT%H:%M:%S%z"))
    stderr.addFilter(redact)
    logger.addHandler(stderr)
    if log_file is not None:
        try:
            handler = _LogFile(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot write: {exc.strerror}") from exc
        handler.setFormatter(_Shown(_FORMAT, "%Y-%m-%dT%H:%M:%S%z"))
        handler.addFilter(redact)
        # One line now, written through: a full disk is found before anything is spent.
        handler.handle(logger.makeRecord("aihd", logging.INFO, __file__, 0, "log opened", (), None))
        if handler.failure is not None:
            handler.close()
            raise UsageError(handler.failure)
        logger.addHandler(handler)
