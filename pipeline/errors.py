"""One exception tree for aihd. Lower-layer errors (aiohttp, sqlite3, yaml) are mapped into it
at one boundary each, with ``raise ... from exc``.

    PipelineError                 base; ``exit_code`` is what the CLI exits with (1 unless said)
    ├── UsageError                bad option or path on the command line (exit 2)
    ├── ManifestError             bad manifest: file, line, key (exit 2)
    │   └── ToolOptionError       a v3 tool option that cannot be ordered (exit 2)
    ├── CatalogError              a space or enhancement the live catalog does not know (exit 2)
    ├── LedgerError               the ledger file cannot be used
    │   ├── NotALedger            the file at the ledger's path is not an aihd ledger (exit 2)
    │   ├── LedgerBusy            another run holds the ledger (exit 5)
    │   ├── LedgerUnreachable     the PostgreSQL ledger stayed away after retries (exit 7)
    │   ├── GroupRolledBack       a group of writes was rolled back whole: make it again
    │   ├── SubmitRefused         the ledger refuses an intent: charged, or another run's
    │   │   └── ClaimLost         this run's claim on the photo lapsed or was taken over
    │   └── NotEligible           inside a store: a guarded UPDATE matched no row
    ├── NotNow                    a step that must wait; nothing was sent (never reaches the CLI)
    │   ├── WindowFull            the account's order window has no room: wait ``wait_seconds``
    │   └── OrderBudgetSpent      ``--max-orders``: no order left for this photo in this run
    ├── ResultRejected            a result that must not be placed (does not decode, outside output)
    │   └── ResultTooBig          more pixels than the limit, refused from its header alone
    ├── PhotoError                a photo that cannot be sent: path and reason
    │   └── PhotoChanged          its bytes changed between the scan and the upload
    ├── NotRegularFile            a FIFO, device or socket named like a photo (also an OSError)
    ├── ScanStopped               the run stops: hashing ended mid-photo (never reaches the CLI)
    ├── ApiUnreachable            the API could not be reached after retries (exit 6)
    └── ApiError                  the API answered with an error, or not at all
        ├── AuthRefused           401/403: key missing, wrong, or plan lacks the service (exit 3)
        ├── RateLimited           429: over the order window; carries the API's body
        ├── RequestRejected       400/404/422: carries the API's ``error`` and ``key``
        ├── TransientError        5xx, connection error, timeout on a call that is safe to repeat
        │   └── ConnectFailed     no connection was made: nothing was sent
        └── OutcomeUnknown        an order POST whose response was lost: it may have been charged

``OutcomeUnknown`` is deliberately not a ``TransientError``: retrying it blindly could pay twice.
No message here ever holds the API key: the client never puts headers into an exception, and
it redacts the key from every text a server sends (``pipeline.api.transport``), so an API that
echoes the key in an error body cannot get it into a message, a ledger row or an export.
"""

from __future__ import annotations

__all__ = [
    "EXIT_AUTH",
    "EXIT_BUDGET",
    "EXIT_INTERRUPTED",
    "EXIT_LEDGER_BUSY",
    "EXIT_LEDGER_UNREACHABLE",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ApiError",
    "ApiUnreachable",
    "AuthRefused",
    "CatalogError",
    "ClaimLost",
    "ConnectFailed",
    "GroupRolledBack",
    "LedgerBusy",
    "LedgerError",
    "LedgerUnreachable",
    "ManifestError",
    "NotALedger",
    "NotEligible",
    "NotNow",
    "OrderBudgetSpent",
    "OutcomeUnknown",
    "PhotoChanged",
    "PhotoError",
    "PipelineError",
    "RateLimited",
    "RequestRejected",
    "ResultRejected",
    "ResultTooBig",
    "SubmitRefused",
    "ToolOptionError",
    "TransientError",
    "UsageError",
    "WindowFull",
]

from pathlib import Path

# The exit codes of docs/SPEC.md "The run": one per outcome a script or systemd can act on.
EXIT_OK = 0  # every photo submitted or done
EXIT_SOME_FAILED = 1  # finished; some photos failed (each with its reason in the ledger)
EXIT_USAGE = 2  # usage or manifest error: nothing spent
EXIT_AUTH = 3  # the API refused the key or plan
EXIT_BUDGET = 4  # stopped by --max-orders or --max-duration: resumable
EXIT_LEDGER_BUSY = 5  # the ledger cannot be used now (another run holds it)
EXIT_UNREACHABLE = 6  # the API could not be reached after retries: nothing lost
EXIT_LEDGER_UNREACHABLE = 7  # the PostgreSQL ledger stayed away after retries
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: resumable


class PipelineError(Exception):
    """Base of every error aihd raises on purpose."""

    exit_code = EXIT_SOME_FAILED


class UsageError(PipelineError):
    """A bad command-line option or argument."""

    exit_code = EXIT_USAGE


class ManifestError(PipelineError):
    """A manifest that cannot be used; nothing has been spent."""

    exit_code = EXIT_USAGE

    def __init__(
        self, message: str, *, path: Path | None = None, line: int | None = None, key: str = ""
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        if key:
            where += f"{key}: "
        super().__init__(f"{where}{message}")


class CatalogError(PipelineError):
    """A space or enhancement name that the live catalog does not know."""

    exit_code = EXIT_USAGE


class LedgerError(PipelineError):
    """The ledger cannot be opened or written."""


class NotALedger(LedgerError):
    """The file at the ledger's path is empty, not SQLite, or another tool's: nothing is
    written to it, and nothing is spent (a 0-byte file taken as new would order all again)."""

    exit_code = 2


class LedgerBusy(LedgerError):
    """Another run holds this ledger."""

    exit_code = EXIT_LEDGER_BUSY


class LedgerUnreachable(LedgerError):
    """The ledger's database could not be reached after retries: the run stopped, nothing lost."""

    exit_code = EXIT_LEDGER_UNREACHABLE


class GroupRolledBack(LedgerError):
    """A group of writes (``Ledger.grouped``) was rolled back whole before its COMMIT (chosen as
    a deadlock's victim, or its connection lost): none of it was written, and the results its
    writes gave are void. The group is made again from the start (groupcommit.py)."""


class SubmitRefused(LedgerError):
    """The ledger refuses an order intent: the photo is charged, not uploaded, or claimed by
    another run of the account. Nothing is sent."""


class ClaimLost(SubmitRefused):
    """This run's claim on the photo lapsed (the run was paused past its lease) or another run
    took it over: the run may not change the photo, nor spend on it. Nothing is written."""


class NotEligible(LedgerError):
    """A guarded UPDATE matched no row: the photo is not in the state the change needs.
    Raised and caught inside a ledger store; callers see its answer, never it."""


class ToolOptionError(ManifestError):
    """A folder's tool option that cannot be ordered: ``key`` names it, the text says why.
    Raised without a place (the slug rules do not know the manifest); the loader adds it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class NotNow(PipelineError):
    """A step that must wait or give way; nothing was sent. Handled inside the run."""


class WindowFull(NotNow):
    """The account's window has no room now: try again after ``wait_seconds``."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        super().__init__(f"the account's order window is full for {wait_seconds:.1f} s")


class OrderBudgetSpent(NotNow):
    """``--max-orders``: no order may be reserved for this photo in this run."""

    exit_code = EXIT_BUDGET


class ResultRejected(PipelineError):
    """A result that must not be placed: it does not decode, or it would land outside output."""


class ResultTooBig(ResultRejected):
    """A result with more pixels than ``MAX_RESULT_PIXELS``: refused from its header alone."""


class PhotoError(PipelineError):
    """A photo that cannot be sent (empty, not an image, truncated, too big, unreadable)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class PhotoChanged(PhotoError):
    """The bytes uploaded are not the bytes scanned: the photo is scanned again, not ordered."""


class NotRegularFile(PipelineError, OSError):
    """The path is a FIFO, a device, a socket or a folder: nothing is read from it. An OSError
    too (``strerror`` says what it is), so every reader's "cannot read" handling takes it."""


class ScanStopped(PipelineError):
    """The run is stopping: a photo's hashing ended before its last byte."""


class ApiUnreachable(PipelineError):
    """The API could not be reached after every retry; nothing was lost."""

    exit_code = EXIT_UNREACHABLE


class ApiError(PipelineError):
    """The API answered with an error, or did not answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str = "",
        key: str = "",
        method: str = "",
        endpoint: str = "",
    ) -> None:
        self.status = status
        self.error = error
        self.key = key
        self.method = method
        self.endpoint = endpoint
        super().__init__(message)

    @property
    def reason(self) -> str:
        """A short reason for the ledger: the API's key when it gave one, else the message."""
        return self.key or self.error or str(self)


class AuthRefused(ApiError):
    """401/403: stop everything, nothing more will succeed with this key."""

    exit_code = EXIT_AUTH


class RateLimited(ApiError):
    """429: over the account's order window."""


class RequestRejected(ApiError):
    """400/404/422: this request will never succeed as it is."""


class TransientError(ApiError):
    """5xx, connection error or timeout on a call that is safe to repeat."""


class ConnectFailed(TransientError):
    """No connection to the API could be made: nothing was sent."""


class OutcomeUnknown(ApiError):
    """An order POST was sent but its answer was lost (a 5xx of any body, a reset, a timeout):
    it may have been charged, and only the order's own details can tell."""
