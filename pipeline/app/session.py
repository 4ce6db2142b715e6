"""A run's surroundings: where the API is and its key, the ledger's lock, the run's record.

The CLI builds a ``RunRequest`` from options and the manifest; ``run_manifest`` opens what the
run needs, hands it to the ``Runner`` and closes it all again, whatever happens.
"""

from __future__ import annotations

__all__ = [
    "LEASE_ENV",
    "MIN_KEY_LENGTH",
    "SANDBOX_TIME_SCALE",
    "ApiSettings",
    "CollectRequest",
    "RunRequest",
    "api_client",
    "claim_lease_seconds",
    "collect_results",
    "describe_catalog",
    "live_tools",
    "parse_duration",
    "plan_manifest",
    "run_manifest",
    "window_history",
]

import json
import logging
import math
import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.api.factory import AnyVersion
from pipeline.api.v1 import Space, Timeouts, Widget
from pipeline.api.v3 import ProjectBook
from pipeline.bootclock import boot_id, boot_seconds, new_owner
from pipeline.errors import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ApiUnreachable,
    AuthRefused,
    ConnectFailed,
    RequestRejected,
    TransientError,
    UsageError,
)
from pipeline.ledger import Ledger, PostTimes, open_ledger
from pipeline.manifest.accounts import (
    account_ledger,
    base_url_from_env,
    emulator_state,
    key_fingerprint,
    window_account,
)
from pipeline.manifest.loader import Manifest
from pipeline.ordering.catalog import Catalog
from pipeline.ordering.flow import RunCounters
from pipeline.ordering.progress import Progress
from pipeline.ordering.projects import LedgerProjects
from pipeline.ordering.runner import RunLimits, Runner
from pipeline.ordering.summary import RunSummary
from pipeline.ordering.window import OrderWindow
from pipeline.retry import Backoff
from pipeline.stopping import StopSwitch

if TYPE_CHECKING:  # collecting and planning are imported when asked for: a run loads neither
    from tqdm import tqdm

    from pipeline.collect.collector import CollectSummary
    from pipeline.ordering.plan import Plan

SANDBOX_TIME_SCALE = 0.1  # the in-process emulator's orders finish in a tenth of their eta
log = logging.getLogger("aihd")
LEASE_ENV = "AIHD_CLAIM_LEASE_SECONDS"  # how long a run's claims hold unrenewed (default 60)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms]?)", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and the key to it; ``sandbox`` means start a local emulator."""

    base_url: str
    api_key: str = field(repr=False)
    sandbox: bool = False

    @classmethod
    def from_env(cls, key_env: str = "AIHD_API_KEY", *, sandbox: bool = False) -> ApiSettings:
        if sandbox:
            # The emulator gets a fresh random key of its own; the user's key is not needed.
            return cls("http://127.0.0.1:0", secrets.token_urlsafe(24), sandbox=True)
        key = os.environ.get(key_env, "").strip()
        if not key:
            raise UsageError(
                f"no API key: set the environment variable {key_env} "
                "(the key never lives in the manifest), or use --sandbox for the local emulator"
            )
        _check_key(key, key_env)
        return cls(base_url_from_env(), key)


MIN_KEY_LENGTH = 8


def _check_key(key: str, key_env: str) -> None:
    """Refuse a key no API would issue; the message names where it is wrong, never the key.

    A control character would break the request's header (an aiohttp traceback), and a key of
    a few characters would make the log's redaction cut into paths and words.
    """
    for position, char in enumerate(key, 1):
        if not char.isascii() or not char.isprintable():
            what = "a control character" if char.isascii() else "a character that is not ASCII"
            raise UsageError(
                f"{key_env} holds {what} (U+{ord(char):04X}) at position {position}: "
                "set it to the key alone, as AI HomeDesign issued it"
            )
    if len(key) < MIN_KEY_LENGTH:
        raise UsageError(
            f"{key_env} is {len(key)} characters long: an API key has at least "
            f"{MIN_KEY_LENGTH}; set it to the whole key"
        )


def parse_duration(text: str) -> float:
    """'6h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    cleaned = text.strip().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts).lower() != cleaned.lower():
        raise UsageError(f"duration {text!r}: expected e.g. 6h, 90m, 1h30m or 45s")
    return sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What `aihd run` was asked: the manifest, its ledger and the options."""

    manifest: Manifest
    ledger_path: Path | str  # a file, or a postgresql:// URL
    concurrency: int
    max_orders: int | None
    max_duration: float | None
    retry_failed: bool
    collect: bool
    progress_bar: bool
    request_timeout: float
    settle_seconds: float
    command: str


@dataclass(frozen=True, slots=True)
class CollectRequest:
    """What `aihd collect` was asked: the ledger, where results go and the options."""

    ledger_path: Path | str
    output: Path
    folder_roots: dict[str, Path] | None  # None: collect was given a ledger, not a manifest
    concurrency: int
    backoff: Backoff
    wait: bool
    timeout: float | None
    progress_bar: bool
    request_timeout: float
    command: str
    folders: tuple[str, ...] = ()  # --folder: only photos of folders matching these globs
    again: str = ""  # the command that collects what is left, for the summary's hint

    @classmethod
    def for_manifest(
        cls, manifest: Manifest, *, ledger_path: Path | str, **kw: Any
    ) -> CollectRequest:
        return cls(
            ledger_path=ledger_path,
            output=manifest.output,
            folder_roots={f.name: f.path for f in manifest.folders},
            concurrency=kw.pop("concurrency", manifest.concurrency),
            backoff=Backoff(manifest.retry.attempts, wait_max=manifest.retry.max_backoff),
            **kw,
        )

    @classmethod
    def for_ledger(cls, ledger_path: Path, **kw: Any) -> CollectRequest:
        """Collect given a ledger file, not its manifest: every photo it holds, results into
        ``enhanced/`` beside it (``--output`` elsewhere), the default retries."""
        return cls(
            ledger_path=ledger_path,
            output=ledger_path.parent / "enhanced",
            folder_roots=None,
            concurrency=kw.pop("concurrency", 4),
            backoff=Backoff(),
            **kw,
        )


@asynccontextmanager
async def api_client(
    settings: ApiSettings,
    timeouts: Timeouts,
    *,
    projects: ProjectBook | None = None,
    max_in_flight: int | None = None,
    ledger_path: Path | str | None = None,
    webhook_url: str | None = None,
) -> AsyncIterator[AnyVersion]:
    """A client of the real API, or of a local emulator started for this process; it speaks
    v1 and v3 (each photo through the version that orders it). The emulator of a sandbox
    ledger remembers its orders beside it (``ledger_path``), so the next command's finds
    them. ``webhook_url``: where the emulator sends the account's webhooks (aihd serve
    --sandbox)."""
    if not settings.sandbox:
        async with AnyVersion(
            settings.base_url,
            settings.api_key,
            timeouts=timeouts,
            projects=projects,
            max_in_flight=max_in_flight,
        ) as client:
            yield client
        return
    from pipeline.sandbox import SandboxConfig, Webhooks, serve

    # A demo-friendly emulator: the API's window, and orders that finish in a few seconds.
    config = SandboxConfig(
        api_key=settings.api_key,
        time_scale=SANDBOX_TIME_SCALE,
        state_path=None if ledger_path is None else emulator_state(ledger_path),
        webhooks=Webhooks(urls=(webhook_url,) if webhook_url else ()),
    )
    async with (
        serve(config) as emulator,
        AnyVersion(
            emulator.url,
            settings.api_key,
            timeouts=timeouts,
            projects=projects,
            max_in_flight=max_in_flight,
        ) as client,
    ):
        yield client


async def plan_manifest(manifest: Manifest, settings: ApiSettings, ledger_path: Path | str) -> Plan:
    from pipeline.ordering.plan import make_plan

    account = window_account(settings.base_url, manifest.account, sandbox=settings.sandbox)
    # A plan orders nothing: its emulator (--sandbox) has nothing to remember, and writes none.
    async with api_client(settings, Timeouts()) as client:
        return await make_plan(manifest, client, ledger_path, window_account=account)


async def describe_catalog(settings: ApiSettings) -> list[tuple[Space, list[Widget]]]:
    async with api_client(settings, Timeouts()) as client:
        return (await Catalog.fetch(client.v1, backoff=Backoff())).describe()


async def live_tools(settings: ApiSettings) -> list[str] | None:
    """The v3 tools list's active slugs, or None (logged) when it cannot be read."""
    async with api_client(settings, Timeouts()) as client:
        try:
            return await client.v3.tools()
        except (TransientError, ConnectFailed, RequestRejected) as exc:
            log.warning("the v3 tools list could not be read: %s", exc)
            return None


async def run_manifest(request: RunRequest, settings: ApiSettings, stop: StopSwitch) -> RunSummary:
    """Run the manifest on its ledger beside any other run of the account, record the run,
    and release its claims, whatever happens."""
    started = time.monotonic()
    manifest = request.manifest
    ledger = open_ledger(request.ledger_path)
    try:
        _import_legacy_ledger(ledger, request, settings)
        # No lock: runs sharing the ledger claim photos one by one (see SqliteLedger.claim).
        ledger.owner = new_owner()
        ledger.lease_seconds = claim_lease_seconds(os.environ, ledger.lease_seconds)
        run_id = ledger.start_run(request.command)
        counters = RunCounters()
        if capped := ledger.cap_future_posts():
            log.warning(
                "%d order times in the ledger were ahead of this clock (another machine's, "
                "or a clock set back): the order window counts them from now",
                capped,
            )
        account = window_account(settings.base_url, manifest.account, sandbox=settings.sandbox)
        window = _account_window(ledger, request, account)
        progress = Progress(
            bar=request.progress_bar, stream=sys.stderr, window=window, counters=counters
        )
        limits = _run_limits(request, settings, account)
        timeouts = Timeouts(read=request.request_timeout)
        outcome = "crashed"
        reason: dict[str, object] = {}
        log.info(
            "aihd run started: %s, %d folders, ledger %s",
            manifest.path,
            len(manifest.folders),
            ledger.path,  # a URL without its password
        )
        try:
            projects = LedgerProjects(ledger, manifest.account)
            # v3: at most a window's worth of processes running at once (notes 13.8).
            async with api_client(
                settings,
                timeouts,
                projects=projects,
                max_in_flight=manifest.rate_limit.orders,
                ledger_path=request.ledger_path,
            ) as client:
                runner = Runner(
                    manifest,
                    ledger,
                    client,
                    limits,
                    window=window,
                    progress=progress,
                    counters=counters,
                    stop=stop,
                )
                summary = await runner.run(started)
                outcome = summary.outcome
                log.info(
                    "aihd run finished: %s, %d orders spent, exit %d",
                    outcome,
                    summary.orders_spent,
                    summary.exit_code,
                )
                ledger.finish_run(run_id, outcome, asdict(summary))
                if request.collect and summary.exit_code in (EXIT_OK, EXIT_SOME_FAILED):
                    summary = await _collect_after(summary, request, ledger, client, settings, stop)
                return summary
        except AuthRefused:
            outcome = "key-refused"
            raise
        except ApiUnreachable as exc:
            outcome, reason = "api-unreachable", {"error": str(exc)}
            raise
        finally:
            if outcome in ("crashed", "key-refused", "api-unreachable"):
                ledger.finish_run(run_id, outcome, reason)
            ledger.release_claims()
            ledger.release_result_claims()
    finally:
        ledger.close()


def _account_window(ledger: Ledger, request: RunRequest, account: str) -> OrderWindow:
    """This run's order window, started from the orders the account spent lately (a run
    stopped a minute ago), not from an empty window that would burst into 429s. The window is
    the account's: endpoint and account name, as its ledger is named (accounts sharing one
    `ledger:` file each have their own; see accounts.py)."""
    rule = request.manifest.rate_limit
    window = OrderWindow(rule.orders, rule.per_seconds)
    answer_within = 2 * request.request_timeout + 5
    posts = ledger.recent_posts(rule.per_seconds + answer_within, account)
    window.remember(window_history(posts, answer_within))
    return window


def _run_limits(request: RunRequest, settings: ApiSettings, account: str) -> RunLimits:
    """What the command asked of the run's workers, and whose account they spend."""
    return RunLimits(
        concurrency=request.concurrency,
        max_orders=request.max_orders,
        max_duration=request.max_duration,
        retry_failed=request.retry_failed,
        settle_seconds=request.settle_seconds,
        drain_seconds=request.request_timeout,
        key_fingerprint=key_fingerprint(settings.api_key),
        account=account,
    )


async def _collect_after(
    summary: RunSummary,
    request: RunRequest,
    ledger: Ledger,
    client: AnyVersion,
    settings: ApiSettings,
    stop: StopSwitch,
) -> RunSummary:
    """``run --collect``: collect what the run ordered, within what is left of
    ``--max-duration``; the summary gains the collect's report, and its exit code when the
    run's was 0."""
    remaining = None
    if request.max_duration is not None:
        remaining = max(0.0, request.max_duration - summary.seconds)
    after = CollectRequest.for_manifest(
        request.manifest,
        ledger_path=request.ledger_path,
        concurrency=request.concurrency,
        wait=True,
        timeout=remaining,
        progress_bar=request.progress_bar,
        request_timeout=request.request_timeout,
        command=request.command,
    )
    collected = await _collect(after, ledger, client, settings, stop)
    summary = replace(summary, collected=json.loads(collected.to_json()))
    if collected.exit_code != EXIT_OK and summary.exit_code == EXIT_OK:
        summary = replace(summary, exit_code=collected.exit_code)
    return summary


def claim_lease_seconds(env: Mapping[str, str], default: float) -> float:
    """The claims' lease: ``AIHD_CLAIM_LEASE_SECONDS`` if set (a run paused longer than this,
    by a signal or a sleep, loses its photos to another run, and sends nothing for them)."""
    text = env.get(LEASE_ENV, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 1:
        raise UsageError(
            f"{LEASE_ENV}={text!r}: expected a number of seconds of at least 1, e.g. 60"
        )
    return seconds


def window_history(posts: list[PostTimes], answer_within: float) -> list[float]:
    """The order window's clock times of earlier order POSTs: their answers, or for one never
    answered (a killed run's) its intent plus the longest its request may have taken."""
    now, boot, booted, wall = time.monotonic(), boot_id(), boot_seconds(), time.time()
    times = []
    for post in posts:
        if post.boot and post.boot == boot:
            answered = post.answer_clock
            age = booted - (answered if answered is not None else post.intent_clock + answer_within)
        else:
            answered = post.answer_wall
            age = wall - (answered if answered is not None else post.intent_wall + answer_within)
        times.append(now - age)
    return times


def _import_legacy_ledger(ledger: Ledger, request: RunRequest, settings: ApiSettings) -> None:
    """On first use of the account's ledger, take in the manifest's own older ledger."""
    manifest = request.manifest
    default = account_ledger(settings.base_url, manifest.account, sandbox=settings.sandbox)
    legacy = manifest.legacy_ledger
    if request.ledger_path != default or not legacy.is_file():
        return
    imported = ledger.import_ledger(legacy)
    if imported is not None:
        log.warning(
            "imported %d photos of %s into the account's ledger %s; the old file is left as "
            "it was and is no longer used",
            imported,
            legacy,
            request.ledger_path,
        )


async def collect_results(
    request: CollectRequest, settings: ApiSettings, stop: StopSwitch
) -> CollectSummary:
    """``aihd collect``: poll and download, beside any other run or collect of the account.

    No lock: each photo's results are claimed before they are downloaded (as runs claim
    photos), so collects of other manifests or folders go on at once, and two collects of one
    order download it once.
    """
    ledger = open_ledger(request.ledger_path)
    try:
        ledger.owner = new_owner()
        try:
            run_id = ledger.start_run(request.command)
            async with api_client(
                settings,
                Timeouts(read=request.request_timeout),
                ledger_path=request.ledger_path,
            ) as client:
                summary = await _collect(request, ledger, client, settings, stop)
            ledger.finish_run(run_id, "collected", json.loads(summary.to_json()))
            return summary
        finally:
            ledger.release_result_claims()
    finally:
        ledger.close()


async def _collect(
    request: CollectRequest,
    ledger: Ledger,
    client: AnyVersion,
    settings: ApiSettings,
    stop: StopSwitch,
) -> CollectSummary:
    bar: tqdm[Any] | None = None
    if request.progress_bar:
        from tqdm import tqdm  # only for a bar (see progress.py)

        bar = tqdm(total=0, unit="photo", desc="collect", file=sys.stderr, dynamic_ncols=True)

    def on_progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    from pipeline.collect.collector import collect

    try:
        summary = await collect(
            ledger,
            client,
            request.output,
            request.folder_roots,
            wait=request.wait,
            timeout=request.timeout,
            concurrency=request.concurrency,
            backoff=request.backoff,
            stop=stop,
            on_progress=on_progress,
            eta_scale=SANDBOX_TIME_SCALE if settings.sandbox else 1.0,
            folders=request.folders,
        )
        return replace(summary, again=request.again)
    finally:
        if bar is not None:
            bar.close()
