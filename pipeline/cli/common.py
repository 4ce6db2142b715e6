"""What every command shares: errors to exit codes, options, the manifest and ledger, signals."""

from __future__ import annotations

__all__ = [
    "LOCATION",
    "F",
    "T",
    "duration_option",
    "existing_ledger",
    "finish",
    "guard",
    "is_quiet",
    "ledger_for",
    "load_with_warnings",
    "report_log_failure",
    "require_ledger",
    "run_until_signal",
    "scope_of",
    "target_ledger",
    "unattended_options",
]

import asyncio
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from pipeline.errors import PipelineError, UsageError
from pipeline.filenames import shell_join
from pipeline.manifest.folders import folder_matches

# `aihd --help` imports none of these: each command imports what it needs when it runs, so
# help, and a typo's usage error, come back at once (no aiohttp, SQLite or pydantic).
if TYPE_CHECKING:
    from pipeline.manifest.loader import Manifest
    from pipeline.stopping import StopSwitch


F = TypeVar("F", bound=Callable[..., Any])


T = TypeVar("T")


class _Location(click.ParamType):  # type: ignore[type-arg]
    """A path, or a ``postgresql://`` URL passed through untouched (a Path would mangle it)."""

    name = "path"

    def convert(self, value: Any, param: Any, ctx: Any) -> Path | str:
        from pipeline.ledger.stores import is_url

        return value if isinstance(value, str) and is_url(value) else Path(value)


LOCATION = _Location()


class Bounded(click.ParamType):  # type: ignore[type-arg]
    """A finite number from ``low`` to ``high``: nan, inf and a value out of range are
    refused with the range and an example (click.FloatRange lets nan through: every
    comparison with nan is false)."""

    name = "number"

    def __init__(self, low: float, high: float, example: float, unit: str = "seconds") -> None:
        self.low, self.high, self.example, self.unit = low, high, example, unit

    def get_metavar(self, *args: Any, **kwargs: Any) -> str:
        return "SECONDS" if self.unit == "seconds" else "NUMBER"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                number = math.nan
        if not (math.isfinite(number) and self.low <= number <= self.high):
            name = param.opts[0] if param is not None and param.opts else "the value"
            self.fail(
                f"{value!r} is not a number of {self.unit} from {self.low:g} to {self.high:g}: "
                f"give e.g. {name} {self.example:g}",
                param,
                ctx,
            )
        return number


SECONDS_A_DAY = 86400.0
MAX_DURATION_SECONDS = 366 * SECONDS_A_DAY  # a budget longer than a year is a typo


def guard(fn: F) -> F:
    """Turn PipelineError into its message and exit code; Ctrl-C into exit 130."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            click.echo(f"aihd: error: {exc}", err=True)
            report_log_failure()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("aihd: interrupted", err=True)
            sys.exit(130)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def unattended_options(fn: F) -> F:
    """The options every long-running command shares: fit for a terminal or a nightly job."""
    for option in reversed(
        [
            click.option(
                "--no-progress", is_flag=True, help="No progress bar; a log line now and then."
            ),
            click.option(
                "--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."
            ),
            click.option(
                "--log-file", type=click.Path(path_type=Path), help="Append timestamped logs here."
            ),
            click.option(
                "--quiet",
                "-q",
                is_flag=True,
                help="Only warnings and errors on stderr (the default with --log-file when "
                "stderr is not a terminal, as under cron or systemd).",
            ),
            click.option(
                "--folder",
                "folder_patterns",
                multiple=True,
                metavar="PATTERN",
                help="Only the manifest's folders whose name matches this glob "
                "(e.g. 'listings/12-oak-st/*'); repeatable.",
            ),
            click.option(
                "--request-timeout",
                type=Bounded(0.1, 3600.0, example=60.0),
                default=60.0,
                show_default=True,
                help="Seconds (0.1 to 3600) to wait for an API answer before giving up on it.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


class _Summary(Protocol):
    @property
    def exit_code(self) -> int: ...
    def to_json(self) -> str: ...
    def render(self) -> str: ...


def finish(summary: _Summary, as_json: bool, quiet: bool = False) -> None:
    """JSON on stdout for machines (and the human lines on stderr), or the lines on stdout.

    Quiet, the human lines go to the log (file) only: stderr keeps warnings and errors.
    """
    if as_json:
        click.echo(summary.to_json())
        if quiet:
            import logging

            for line in summary.render().splitlines():  # each line stamped, as in the log
                logging.getLogger("aihd").info("%s", line.strip())
        else:
            click.echo(summary.render(), err=True)
    else:
        click.echo(summary.render())
    if report_log_failure() and summary.exit_code == 0:
        sys.exit(1)  # the work is done and recorded, but the log the user asked for is not
    sys.exit(summary.exit_code)


def report_log_failure() -> bool:
    """Say in one line that the log file could not be written; True if so."""
    from pipeline.logs import log_file_failure

    failure = log_file_failure()
    if failure is not None:
        click.echo(f"aihd: error: {failure}; the log is incomplete", err=True)
    return failure is not None


def is_quiet(quiet: bool, log_file: Path | None) -> bool:
    """--quiet, or a log file and no one watching stderr (cron mails whatever it gets)."""
    return quiet or (log_file is not None and not sys.stderr.isatty())


def load_with_warnings(
    path: Path, *, strict: bool = False, folder_patterns: Sequence[str] = ()
) -> Manifest:
    """The manifest, its warnings on stderr, and only the folders --folder asks for."""
    from pipeline.manifest.loader import load_manifest

    manifest = load_manifest(path, strict=strict)
    for warning in manifest.warnings:
        click.echo(f"aihd: warning: {warning}", err=True)
    if not folder_patterns:
        return manifest
    chosen = tuple(f for f in manifest.folders if folder_matches(f.name, folder_patterns))
    if not chosen:
        names = ", ".join(f.name for f in manifest.folders[:20]) or "none"
        raise UsageError(
            f"--folder {' '.join(folder_patterns)}: matches none of the manifest's folders "
            f"({names})"
        )
    return replace(manifest, folders=chosen)


def refuse_upscales(manifest: Manifest, command: str) -> None:
    """``upscale: true`` needs a webhook receiver (the upscaled photo comes by webhook only,
    docs/api/AIHOMEDESIGN_API.md 2.7): only `aihd serve` has one."""
    folders = manifest.upscales
    if not folders:
        return
    path = manifest.path.name
    raise UsageError(
        f"{manifest.path}:{folders[0].line}: folder {folders[0].name!r} has upscale: true, and "
        f"an upscaled photo arrives only by webhook, which `aihd {command}` cannot receive: "
        f"serve the manifest with `aihd serve {path}` (`aihd plan {path} --serve` plans it), "
        "or remove upscale: true"
    )


def duration_option(option: str, text: str | None) -> float | None:
    """A duration with its unit: a bare "6" is refused (seconds or hours?)."""
    from pipeline.app.session import parse_duration

    if text is None:
        return None
    if text.strip().replace(".", "", 1).isdigit():
        raise UsageError(
            f"{option} {text}: give a unit, e.g. {text.strip()}h, {text.strip()}m or "
            f"{text.strip()}s"
        )
    try:
        seconds = parse_duration(text)
    except UsageError:
        raise UsageError(
            f"{option} {text!r}: not a duration; give e.g. {option} 6h, 90m, 1h30m or 45s"
        ) from None
    if seconds > MAX_DURATION_SECONDS:
        raise UsageError(f"{option} {text}: at most 366 days; give e.g. {option} 6h")
    return seconds


def require_ledger(
    path: Path | str, manifest: Path | None = None, *, sandbox: bool = False
) -> None:
    """The ledger must exist; the error says which run would create it, ready to paste."""
    from pipeline.ledger.stores import is_url

    if not is_url(path) and not Path(path).is_file():
        if manifest is None:
            # No manifest known here, so no command to paste: the words say what creates it.
            raise UsageError(
                f"{path}: no ledger here yet; check the path, or create it with a run of the "
                "manifest that uses it (aihd run MANIFEST)"
            )
        run = ["aihd", "run", str(manifest.absolute()), *(["--sandbox"] if sandbox else [])]
        raise UsageError(f"{path}: no ledger here yet; `{shell_join(run)}` creates it")


def ledger_for(
    manifest: Manifest, option: Path | str | None, *, sandbox: bool = False
) -> Path | str:
    """--ledger, AIHD_LEDGER, the manifest's ledger:, or the account's (pipeline/accounts)."""
    from pipeline.api import DEFAULT_BASE_URL
    from pipeline.manifest.accounts import base_url_from_env, chosen_ledger

    # The local emulator is an endpoint of its own: AIHD_BASE_URL is not read for it.
    base_url = DEFAULT_BASE_URL if sandbox else base_url_from_env()
    return chosen_ledger(option, manifest.ledger, base_url, manifest.account, sandbox=sandbox)


def scope_of(target: Path | str) -> list[str] | None:
    """A manifest's folders (its photos, of an account ledger that holds others'), or None."""
    from pipeline.manifest.loader import load_manifest

    if isinstance(target, str) or target.suffix.lower() not in (".yaml", ".yml"):
        return None
    return [str(folder.path) for folder in load_manifest(target).folders]


def existing_ledger(target: Path | str, *, sandbox: bool = False) -> Path | str:
    """A manifest (its ledger; the local emulator's with ``sandbox``) or a ledger file or
    URL; the ledger must already exist."""
    from pipeline.manifest.loader import load_manifest

    if isinstance(target, Path) and target.suffix.lower() in (".yaml", ".yml"):
        require_ledger(
            path := ledger_for(load_manifest(target), None, sandbox=sandbox),
            target,
            sandbox=sandbox,
        )
    else:
        require_ledger(path := target)
    return path


def target_ledger(manifest: Path | None, into: Path | str | None) -> Path | str:
    from pipeline.manifest.accounts import base_url_from_env, chosen_ledger
    from pipeline.manifest.loader import load_manifest

    if manifest is not None:
        return ledger_for(load_manifest(manifest), into)
    return chosen_ledger(into, None, base_url_from_env(), "default")


def run_until_signal(start: Callable[[StopSwitch], Awaitable[T]]) -> T:
    """Run the coroutine; the first SIGINT/SIGTERM asks it to stop cleanly, a second cuts."""

    from pipeline import eventloop
    from pipeline.stopping import StopSwitch

    stop = StopSwitch()

    async def runner() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        hits = 0

        def on_signal() -> None:
            nonlocal hits
            hits += 1
            if hits == 1:
                click.echo("aihd: stopping (signal); the ledger stays consistent", err=True)
                stop.set("interrupted")
            elif task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return await start(stop)

    try:
        return eventloop.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
