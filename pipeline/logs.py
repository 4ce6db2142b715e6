"""Logging for unattended runs: timestamped lines on stderr and in ``--log-file``, key redacted."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pipeline.errors import UsageError

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _Redact(logging.Filter):
    """Replace the API key wherever it would appear in a log line."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secret and self._secret in record.getMessage():
            record.msg = record.getMessage().replace(self._secret, "<redacted>")
            record.args = None
        return True


def setup_logging(log_file: Path | None, *, verbose: bool, secret: str) -> None:
    """Log lines go to stderr when there is no progress bar, and always to ``log_file``."""
    logger = logging.getLogger("aihd")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    redact = _Redact(secret)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.INFO if verbose else logging.WARNING)
    stderr.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%dT%H:%M:%S%z"))
    stderr.addFilter(redact)
    logger.addHandler(stderr)
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot write: {exc.strerror}") from exc
        handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%dT%H:%M:%S%z"))
        handler.addFilter(redact)
        logger.addHandler(handler)
