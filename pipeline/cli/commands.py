"""The ``aihd`` command. Data goes to stdout, messages and errors to stderr.

Every foreseeable mistake is a ``PipelineError`` and ends as one line on stderr and an exit
code from the spec, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from pipeline import __version__
from pipeline.errors import PipelineError, UsageError
from pipeline.manifest.folders import folder_matches

# `aihd --help` imports none of these: each command imports what it needs when it runs, so
# help, and a typo's usage error, come back at once (no aiohttp, SQLite or pydantic).
if TYPE_CHECKING:
    from pipeline.manifest.loader import Manifest
    from pipeline.ordering.runner import StopSwitch

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class _Location(click.ParamType):  # type: ignore[type-arg]
    """A path, or a ``postgresql://`` URL passed through untouched (a Path would mangle it)."""

    name = "path"

    def convert(self, value: Any, param: Any, ctx: Any) -> Path | str:
        from pipeline.ledger.stores import is_url

        return value if isinstance(value, str) and is_url(value) else Path(value)


LOCATION = _Location()


def _guard(fn: F) -> F:
    """Turn PipelineError into its message and exit code; Ctrl-C into exit 130."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            click.echo(f"aihd: error: {exc}", err=True)
            _report_log_failure()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("aihd: interrupted", err=True)
            sys.exit(130)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def _unattended_options(fn: F) -> F:
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
                type=click.FloatRange(0.1),
                default=60.0,
                show_default=True,
                help="Seconds to wait for an API answer before giving up on it.",
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


def _finish(summary: _Summary, as_json: bool, quiet: bool = False) -> None:
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
    if _report_log_failure() and summary.exit_code == 0:
        sys.exit(1)  # the work is done and recorded, but the log the user asked for is not
    sys.exit(summary.exit_code)


def _report_log_failure() -> bool:
    """Say in one line that the log file could not be written; True if so."""
    from pipeline.logs import log_file_failure

    failure = log_file_failure()
    if failure is not None:
        click.echo(f"aihd: error: {failure}; the log is incomplete", err=True)
    return failure is not None


def _is_quiet(quiet: bool, log_file: Path | None) -> bool:
    """--quiet, or a log file and no one watching stderr (cron mails whatever it gets)."""
    return quiet or (log_file is not None and not sys.stderr.isatty())


def _load(path: Path, *, strict: bool = False, folder_patterns: Sequence[str] = ()) -> Manifest:
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


def _duration(option: str, text: str | None) -> float | None:
    """A duration with its unit: a bare "6" is refused (seconds or hours?)."""
    from pipeline.app.session import parse_duration

    if text is None:
        return None
    if text.strip().replace(".", "", 1).isdigit():
        raise UsageError(
            f"{option} {text}: give a unit, e.g. {text.strip()}h, {text.strip()}m or "
            f"{text.strip()}s"
        )
    return parse_duration(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aihd")
def main() -> None:
    """Bulk-enhance listing photos through the AI HomeDesign Image Enhancement API.

    \b
    Example:
      export AIHD_API_KEY=...        # never put the key in the manifest
      aihd plan listings.yaml        # what a run would do, spending nothing
      aihd run listings.yaml         # order each photo once; re-run to resume
      aihd collect listings.yaml --wait
    """


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--ledger", type=LOCATION, help="Ledger file or postgresql:// URL (default: manifest's)."
)
@click.option("--concurrency", type=click.IntRange(1, 256), help="Photos in flight.")
@click.option("--max-orders", type=click.IntRange(0), help="Stop after this many orders (exit 4).")
@click.option("--max-duration", help="Stop after this long, e.g. 6h, 90m (exit 4).")
@click.option("--retry-failed", is_flag=True, help="Also retry photos that failed for good.")
@click.option("--collect", "then_collect", is_flag=True, help="Then collect the results.")
@click.option("--sandbox", is_flag=True, help="Run against an in-process local emulator.")
@click.option("--strict", is_flag=True, help="Refuse a folder that is gone (default: skip it).")
@_unattended_options
@click.option(
    "--settle",
    type=click.FloatRange(0.0),
    default=120.0,
    show_default=True,
    help="Seconds to let the API settle before checking an order whose answer was lost.",
)
@_guard
def run(
    manifest: Path,
    ledger: Path | None,
    concurrency: int | None,
    max_orders: int | None,
    max_duration: str | None,
    retry_failed: bool,
    then_collect: bool,
    sandbox: bool,
    strict: bool,
    no_progress: bool,
    as_json: bool,
    log_file: Path | None,
    quiet: bool,
    folder_patterns: tuple[str, ...],
    request_timeout: float,
    settle: float,
) -> None:
    """Upload and order every photo of MANIFEST once; re-running resumes.

    \b
    Example:
      aihd run listings.yaml --max-duration 6h --no-progress --json
      aihd run sample_manifests/demo.yaml --sandbox --collect
    """
    from pipeline.app.session import ApiSettings, RunRequest, run_manifest
    from pipeline.logs import setup_logging

    loaded = _load(manifest, strict=strict, folder_patterns=folder_patterns)
    bar = not no_progress and sys.stderr.isatty()
    quiet = _is_quiet(quiet, log_file)
    settings = ApiSettings.from_env(loaded.api_key_env, sandbox=sandbox)
    max_seconds = _duration("--max-duration", max_duration)
    setup_logging(log_file, verbose=not bar and not quiet, secret=settings.api_key)
    request = RunRequest(
        manifest=loaded,
        ledger_path=_chosen_ledger(loaded, ledger, sandbox=sandbox),
        concurrency=concurrency or loaded.concurrency,
        max_orders=max_orders,
        max_duration=max_seconds,
        retry_failed=retry_failed,
        collect=then_collect,
        progress_bar=bar,
        request_timeout=request_timeout,
        settle_seconds=settle,
        command=" ".join(["aihd", *sys.argv[1:]]),
    )
    _finish(_run_until_signal(lambda stop: run_manifest(request, settings, stop)), as_json, quiet)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--sandbox", is_flag=True, help="Ask an in-process local emulator.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.option("--strict", is_flag=True, help="Refuse a folder that is gone (default: skip it).")
@_guard
def plan(manifest: Path, sandbox: bool, as_json: bool, strict: bool) -> None:
    """Show what `aihd run` would do and spend, spending nothing.

    Per folder: photos found, new, to resume, to check, done, duplicates, failed
    (broken files among them); which folders each pattern matched; then the orders
    a run would spend and how long the order window makes that take. Names are
    checked against the live catalog; nothing is uploaded.

    \b
    Example:
      aihd plan listings.yaml
      aihd plan listings.yaml --json | jq .orders
    """
    from pipeline import eventloop
    from pipeline.app.session import ApiSettings, plan_manifest

    loaded = _load(manifest, strict=strict)
    settings = ApiSettings.from_env(loaded.api_key_env, sandbox=sandbox)
    planned = eventloop.run(
        plan_manifest(loaded, settings, _chosen_ledger(loaded, None, sandbox=sandbox))
    )
    click.echo(planned.to_json() if as_json else planned.render())


@main.command(name="collect")
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.option("--wait", is_flag=True, help="Keep polling until every result is downloaded.")
@click.option("--timeout", "timeout_text", help="With --wait: give up after this long, e.g. 2h.")
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path),
    help="Put the results here instead of the manifest's output folder.",
)
@_unattended_options
@_guard
def collect_command(
    target: Path | str,
    wait: bool,
    timeout_text: str | None,
    output_dir: Path | None,
    no_progress: bool,
    as_json: bool,
    log_file: Path | None,
    quiet: bool,
    folder_patterns: tuple[str, ...],
    request_timeout: float,
) -> None:
    """Download the enhanced photos of submitted orders into the output folder.

    Results land in OUTPUT/<folder>/<photo name>.<ext> (_2, _3 for further results).
    Photos whose results are not ready are left for later, unless --wait.

    \b
    Example:
      aihd collect listings.yaml                 # the morning after a nightly run
      aihd collect listings.yaml --wait --timeout 2h
      aihd collect listings.ledger.sqlite        # output: enhanced/ beside the ledger
      aihd collect listings.yaml --folder 'listings/12-oak-st/*' --output rush/
    """
    from pipeline.app.session import ApiSettings, CollectRequest, collect_results
    from pipeline.logs import setup_logging
    from pipeline.manifest.loader import refuse_output_over_photos
    from pipeline.retry import Backoff

    if timeout_text is not None and not wait:
        raise UsageError(
            f"--timeout {timeout_text} only applies with --wait: add --wait, or drop --timeout "
            "(without --wait, collect asks once and returns)"
        )
    bar = not no_progress and sys.stderr.isatty()
    quiet = _is_quiet(quiet, log_file)
    timeout = _duration("--timeout", timeout_text)
    common: dict[str, Any] = {
        "wait": wait,
        "timeout": timeout,
        "progress_bar": bar,
        "request_timeout": request_timeout,
        "command": " ".join(["aihd", *sys.argv[1:]]),
    }
    if isinstance(target, Path) and target.suffix.lower() in (".yaml", ".yml"):
        manifest = _load(target)
        settings = ApiSettings.from_env(manifest.api_key_env)
        request = CollectRequest.for_manifest(manifest, ledger_path=_ledger_path(target), **common)
        if output_dir is not None:
            refuse_output_over_photos(output_dir.resolve(), manifest, where="--output")
    else:
        ledger_path = _ledger_path(target)
        if isinstance(ledger_path, str):
            raise UsageError(
                f"{ledger_path}: name the manifest instead (its output folder is where the "
                "results go), e.g. aihd collect listings.yaml"
            )
        settings = ApiSettings.from_env()
        request = CollectRequest(
            ledger_path=ledger_path,
            output=ledger_path.parent / "enhanced",
            folder_roots=None,
            concurrency=4,
            backoff=Backoff(),
            **common,
        )
    if output_dir is not None:
        request = replace(request, output=output_dir.resolve())
    if folder_patterns:
        request = replace(request, folders=folder_patterns)
    setup_logging(log_file, verbose=not bar and not quiet, secret=settings.api_key)
    _require_ledger(request.ledger_path)
    _finish(
        _run_until_signal(lambda stop: collect_results(request, settings, stop)), as_json, quiet
    )


@main.command()
@click.option("--manifest", type=click.Path(path_type=Path), help="Use its api_key_env.")
@click.option("--sandbox", is_flag=True, help="Ask an in-process local emulator.")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@_guard
def catalog(manifest: Path | None, sandbox: bool, as_json: bool) -> None:
    """Print the spaces and enhancement toggles the API offers for image enhancement.

    \b
    Example:
      aihd catalog            # with AIHD_API_KEY set
      aihd catalog --sandbox
    """
    from pipeline import eventloop
    from pipeline.app.session import ApiSettings, fetch_catalog
    from pipeline.manifest.loader import load_manifest

    env = load_manifest(manifest).api_key_env if manifest else "AIHD_API_KEY"
    settings = ApiSettings.from_env(env, sandbox=sandbox)
    described = eventloop.run(fetch_catalog(settings))
    if as_json:
        data = [
            {
                "space": s.name,
                "title": s.title,
                "id": s.id,
                "widgets": [
                    {
                        "title": w.title,
                        "id": w.id,
                        "optional": w.is_optional,
                        "items": [{"title": i.title, "id": i.id} for i in w.items],
                    }
                    for w in widgets
                ],
            }
            for s, widgets in described
        ]
        click.echo(json.dumps(data, indent=2))
        return
    for space, widgets in described:
        click.echo(f"{space.title or space.name}  (space: {space.name})")
        for widget in widgets:
            optional = "optional" if widget.is_optional else "required"
            click.echo(f"  {widget.title} ({optional}):")
            for item in widget.items:
                click.echo(f"    - {item.title}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--key", help="API key the emulator accepts (default: a random one).")
@click.option("--window", default="10/600", show_default=True, help="Order window ORDERS/SECONDS.")
@click.option(
    "--time-scale",
    type=click.FloatRange(0.0),
    default=1.0,
    show_default=True,
    help="Multiply each order's eta by this (0.01: a 30 s eta takes 0.3 s).",
)
@click.option(
    "--latency", type=click.FloatRange(0.0), default=0.0, help="Seconds added to each answer."
)
@click.option(
    "--error-rate", type=click.FloatRange(0.0, 1.0), default=0.0, help="Fraction answered 5xx."
)
@click.option(
    "--reset-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    help="Fraction whose connection is reset.",
)
@click.option(
    "--lost-after-charge-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    help="Fraction of order posts charged, then their answer lost.",
)
@click.option("--seed", type=int, help="Seed the faults, to replay a night exactly.")
@click.option(
    "--v3",
    "v3_readings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Play this reading of a v3 unknown, e.g. envelope=bare (repeat; names and values: "
    "pipeline/sandbox/v3_readings.py).",
)
@_guard
def sandbox(
    host: str,
    port: int,
    key: str | None,
    window: str,
    time_scale: float,
    latency: float,
    error_rate: float,
    reset_rate: float,
    lost_after_charge_rate: float,
    seed: int | None,
    v3_readings: tuple[str, ...],
) -> None:
    """Serve the local emulator of the API (not the real service) for demos and tests.

    Point aihd at it with AIHD_BASE_URL and the key it prints (or --key). The fault
    options make it misbehave as a real network might, each a fraction of requests.

    \b
    Example:
      aihd sandbox --port 8787 --key sandbox-key-123 --window 10/60 --time-scale 0.1
      AIHD_BASE_URL=http://127.0.0.1:8787 AIHD_API_KEY=sandbox-key-123 aihd run listings.yaml
      aihd sandbox --error-rate 0.05 --lost-after-charge-rate 0.05 --seed 1
      aihd sandbox --v3 envelope=bare --v3 process_id_field=process_id
    """
    import secrets

    from pipeline.sandbox import Faults, SandboxConfig, run_forever
    from pipeline.sandbox.v3_readings import readings_from_pairs

    try:
        orders_text, seconds_text = window.split("/")
        orders, seconds = int(orders_text), float(seconds_text)
    except ValueError:
        raise UsageError(f"--window {window!r}: expected ORDERS/SECONDS, e.g. 10/600") from None
    try:
        readings = readings_from_pairs(v3_readings)
    except ValueError as exc:
        raise UsageError(f"--v3: {exc}") from None
    config = SandboxConfig(
        api_key=key or secrets.token_urlsafe(24),
        orders_per_window=orders,
        window_seconds=seconds,
        time_scale=time_scale,
        faults=Faults(
            latency=latency,
            error_rate=error_rate,
            reset_rate=reset_rate,
            lost_after_charge_rate=lost_after_charge_rate,
            seed=seed,
        ),
        v3=readings,
    )
    try:
        run_forever(config, host=host, port=port)
    except OSError as exc:  # raised while binding: nothing is served yet
        hint = {
            errno.EADDRINUSE: "another program listens there: stop it, choose another "
            "--port, or --port 0 for a free one",
            errno.EACCES: "ports below 1024 need privileges: choose a port above 1024",
            errno.EADDRNOTAVAIL: "no interface of this machine has that address: use 127.0.0.1",
        }.get(exc.errno or 0, "choose another --host or --port")
        raise UsageError(
            f"cannot serve on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}; {hint}"
        ) from exc


def _require_ledger(path: Path | str) -> None:
    from pipeline.ledger.stores import is_url

    if not is_url(path) and not Path(path).is_file():
        raise UsageError(f"{path}: no ledger here yet; `aihd run` creates it")


def _chosen_ledger(
    manifest: Manifest, option: Path | str | None, *, sandbox: bool = False
) -> Path | str:
    """--ledger, AIHD_LEDGER, the manifest's ledger:, or the account's (pipeline/accounts)."""
    from pipeline.manifest.accounts import base_url_from_env, chosen_ledger

    return chosen_ledger(
        option, manifest.ledger, base_url_from_env(), manifest.account, sandbox=sandbox
    )


def _scope(target: Path | str) -> list[str] | None:
    """A manifest's folders (its photos, of an account ledger that holds others'), or None."""
    from pipeline.manifest.loader import load_manifest

    if isinstance(target, str) or target.suffix.lower() not in (".yaml", ".yml"):
        return None
    return [str(folder.path) for folder in load_manifest(target).folders]


def _ledger_path(target: Path | str) -> Path | str:
    """A manifest (its ledger) or a ledger file or URL; the ledger must already exist."""
    from pipeline.manifest.loader import load_manifest

    if isinstance(target, Path) and target.suffix.lower() in (".yaml", ".yml"):
        path = _chosen_ledger(load_manifest(target), None)
    else:
        path = target
    _require_ledger(path)
    return path


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.option("--failed", "list_failed", is_flag=True, help="List failed photos and why.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@click.option("--all", "everything", is_flag=True, help="Every photo of the ledger.")
@click.option(
    "--folder",
    "folder_patterns",
    multiple=True,
    metavar="PATTERN",
    help="Only folders whose name matches this glob; repeatable.",
)
@_guard
def status(
    target: Path | str,
    list_failed: bool,
    as_json: bool,
    everything: bool,
    folder_patterns: tuple[str, ...],
) -> None:
    """Show photos per folder and state, orders spent, and the last run.

    \b
    Example:
      aihd status listings.yaml
      aihd status listings.yaml --failed        # each failed photo with its reason
      aihd status listings.ledger.sqlite --json
      aihd status listings.ledger.sqlite --folder 'listings/12-oak-st/*'
    """
    from pipeline.app.status import render_status, status_json
    from pipeline.ledger import open_ledger

    scope = None if everything else _scope(target)
    ledger = open_ledger(_ledger_path(target))
    try:
        chosen = (lambda name: folder_matches(name, folder_patterns)) if folder_patterns else None
        if as_json:
            click.echo(status_json(ledger, scope))
        else:
            click.echo(render_status(ledger, chosen, failed=list_failed, scope=scope))
    finally:
        ledger.close()


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Really clear the charge: the next run pays again.")
@_guard
def reorder(target: Path | str, photos: tuple[Path, ...], yes: bool) -> None:
    """Order photos the API already charged for AGAIN: the next run pays for each once more.

    Nothing else ever orders a charged photo again (not --retry-failed, not a
    restart). Without --yes this only shows what it would spend.

    \b
    Example:
      aihd reorder listings.yaml listings/12-oak-st/inside/kitchen.jpg
      aihd reorder listings.yaml listings/12-oak-st/inside/kitchen.jpg --yes
      aihd run listings.yaml
    """
    from pipeline.ledger import open_ledger
    from pipeline.ordering.reorder import plan_reorder

    ledger = open_ledger(_ledger_path(target))
    try:
        lines, photo_ids = plan_reorder(ledger, [str(p.resolve()) for p in photos])
        for line in lines:
            click.echo(line)
        if not photo_ids:
            sys.exit(1)
        if not yes:
            click.echo(
                f"this would spend {len(photo_ids)} more order(s) on the next run; "
                "add --yes to go ahead",
                err=True,
            )
            sys.exit(2)
        reordered = ledger.reorder(photo_ids)
        click.echo(
            f"aihd reorder: {len(reordered)} photo(s) will be ordered, and paid for, again by "
            "the next `aihd run`"
        )
    finally:
        ledger.close()


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="File (default: stdout).")
@click.option("--all", "everything", is_flag=True, help="Every photo of the ledger.")
@_guard
def export(target: Path | str, fmt: str, output: Path | None, everything: bool) -> None:
    """Write one row per photo (path, state, order_id, image_id, eta_seconds, error, ...).

    \b
    Example:
      aihd export listings.yaml --format csv -o orders.csv
      aihd export listings.ledger.sqlite --format jsonl | jq .state
    """
    from pipeline.app.export import export_rows
    from pipeline.ledger import open_ledger

    scope = None if everything else _scope(target)
    ledger = open_ledger(_ledger_path(target))
    try:
        if output is None:
            count = export_rows(ledger, fmt, sys.stdout, scope)  # type: ignore[arg-type]
        else:
            try:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = export_rows(ledger, fmt, out, scope)  # type: ignore[arg-type]
            except OSError as exc:
                raise UsageError(f"-o {output}: cannot write: {exc.strerror}") from exc
        click.echo(f"aihd export: {count} photos", err=True)
    finally:
        ledger.close()


@main.group()
def ledger() -> None:
    """Find, and import into, the account's ledger (where every order is recorded).

    \b
    Example:
      aihd ledger path listings.yaml
      aihd ledger import listings.ledger.sqlite --manifest listings.yaml
    """


def _target_ledger(manifest: Path | None, into: Path | str | None) -> Path | str:
    from pipeline.manifest.accounts import base_url_from_env, chosen_ledger
    from pipeline.manifest.loader import load_manifest

    if manifest is not None:
        return _chosen_ledger(load_manifest(manifest), into)
    return chosen_ledger(into, None, base_url_from_env(), "default")


@ledger.command(name="path")
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@_guard
def ledger_path(manifest: Path | None) -> None:
    """Print the ledger a manifest (or the default account) uses.

    \b
    Example:
      aihd ledger path listings.yaml
      sqlite3 "$(aihd ledger path listings.yaml)" 'select state, count(*) from photos group by 1'
    """
    click.echo(_target_ledger(manifest, None))


@ledger.command(name="import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--manifest", type=click.Path(path_type=Path), help="Into this manifest's ledger.")
@click.option("--into", type=LOCATION, help="Into this ledger file or postgresql:// URL.")
@_guard
def ledger_import(source: Path, manifest: Path | None, into: Path | str | None) -> None:
    """Copy an older ledger (e.g. a per-manifest one) into the account's ledger, once.

    Nothing is lost: every photo, order and run is copied; a photo charged in either
    ledger is never ordered again.

    \b
    Example:
      aihd ledger import listings.ledger.sqlite --manifest listings.yaml
    """
    from pipeline.ledger import open_ledger

    target = _target_ledger(manifest, into)
    opened = open_ledger(target)
    try:
        imported = opened.import_ledger(source)
    finally:
        opened.close()
    if imported is None:
        click.echo(
            f"aihd ledger import: {source} was imported into {opened.path} before; nothing done"
        )
    else:
        click.echo(f"aihd ledger import: {imported} photos from {source} into {opened.path}")


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=click.Path(path_type=Path))
@click.argument(
    "paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("--reason", default="ignored by the operator", help="Why, for the ledger.")
@_guard
def ignore(target: Path, paths: tuple[Path, ...], reason: str) -> None:
    """Leave photos out of every later run (a broken file that would fail each night).

    The photos stay in the ledger as they are; `aihd plan` and `aihd run` no longer find
    them. To leave out a pattern of files, use `exclude:` on the folder in the manifest.

    \b
    Example:
      aihd ignore listings.yaml listings/12-oak-st/inside/corrupt.jpg
    """
    from pipeline.ledger import open_ledger

    # As a run finds them: the folder's real path, then the file's own name (not followed).
    absolute = [str(p.expanduser().absolute().parent.resolve() / p.name) for p in paths]
    ledger = open_ledger(_ledger_path(target))
    try:
        added = ledger.ignore_paths(absolute, reason)
        known = {row.path for row in ledger.photos(current_only=False)}
    finally:
        ledger.close()
    for path in absolute:
        if path not in known and not Path(path).exists():
            click.echo(f"aihd: warning: {path}: no such file, and no photo of the ledger", err=True)
    click.echo(f"aihd ignore: {added} path(s) newly ignored; later runs leave them out", err=True)


@main.command()
@_guard
def schema() -> None:
    """Print the manifest's JSON Schema, for editors that check YAML as it is typed.

    \b
    Example:
      aihd schema > aihd-manifest.schema.json
    """
    from pipeline.manifest.loader import manifest_json_schema

    click.echo(json.dumps(manifest_json_schema(), indent=2))


# -- review and delivery: look before and after, decide, deliver MLS-ready photos --------------


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Folder for the page (default: review/ beside the manifest).",
)
@click.option(
    "--apply",
    "apply_file",
    type=click.Path(path_type=Path),
    help="Record the decisions a review page exported, instead of writing the page.",
)
@_guard
def review(manifest: Path, output: Path | None, apply_file: Path | None) -> None:
    """Write a static before/after review page of MANIFEST's photos, or record its decisions.

    The page (index.html, its assets and thumbnails) opens from file:// with no server:
    before/after slider, filters, keys a / r to approve / reject. It cannot write the
    ledger: export its decisions and record them with --apply.

    \b
    Example:
      aihd review listings.yaml                  # prints the page's file:// link
      aihd review listings.yaml --apply ~/Downloads/aihd-decisions.json
    """
    from pipeline.ledger import Decision, open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.review.decisions import apply_decisions, manifest_rows, read_decisions_file
    from pipeline.review.page import write_review

    loaded = load_manifest(manifest)
    ledger = open_ledger(_ledger_path(manifest))
    try:
        if apply_file is not None:
            entries = read_decisions_file(apply_file)
            rows = manifest_rows(loaded, ledger)
            counts = apply_decisions(ledger, rows, entries, str(apply_file))
            click.echo(
                f"aihd review: recorded {counts[Decision.APPROVED]} approved, "
                f"{counts[Decision.REJECTED]} rejected from {apply_file}"
            )
            return
        folder = output or loaded.path.parent / "review"
        try:
            page = write_review(loaded, ledger, folder)
        except OSError as exc:
            raise UsageError(f"{folder}: cannot write the review page: {exc.strerror}") from None
    finally:
        ledger.close()
    click.echo(
        f"aihd review: {page.photos} photos, {page.thumbnails_made} new thumbnails", err=True
    )
    click.echo(page.index.resolve().as_uri())


def _decide(manifest: Path, paths: tuple[Path, ...], folder: str | None, verdict: str) -> None:
    from pipeline.ledger import Decision, open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.review.decisions import (
        REORDER_HINT,
        manifest_rows,
        record_decision,
        select_photos,
    )

    if bool(paths) == (folder is not None):
        raise UsageError(f"aihd {verdict}: give photo paths or --folder FOLDER (one of the two)")
    decision = Decision.APPROVED if verdict == "approve" else Decision.REJECTED
    loaded = load_manifest(manifest)
    ledger = open_ledger(_ledger_path(manifest))
    try:
        photos = select_photos(loaded, manifest_rows(loaded, ledger), paths, folder)
        count = record_decision(ledger, photos, decision, f"aihd {verdict}")
    finally:
        ledger.close()
    click.echo(f"aihd {verdict}: {count} photo{'s' if count != 1 else ''} {decision.value}")
    if decision is Decision.REJECTED and count:
        click.echo(f"aihd {verdict}: {REORDER_HINT}", err=True)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--folder", help="Every completed photo of this manifest folder.")
@_guard
def approve(manifest: Path, paths: tuple[Path, ...], folder: str | None) -> None:
    """Approve completed photos of MANIFEST (by original or result path) for delivery.

    \b
    Example:
      aihd approve listings.yaml listings/12-oak-st/inside/kitchen.jpg
      aihd approve listings.yaml --folder listings/12-oak-st/outside
    """
    _decide(manifest, paths, folder, "approve")


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--folder", help="Every completed photo of this manifest folder.")
@_guard
def reject(manifest: Path, paths: tuple[Path, ...], folder: str | None) -> None:
    """Reject completed photos of MANIFEST: they are not delivered, nor ordered again.

    Only the explicit `aihd reorder PATH... --yes` orders a rejected photo again (1 credit).

    \b
    Example:
      aihd reject listings.yaml enhanced/listings/12-oak-st/inside/den.jpg
    """
    _decide(manifest, paths, folder, "reject")


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--profile",
    "profile_name",
    default="mls-default",
    show_default=True,
    help="A delivery profile: built-in mls-default, or one under delivery_profiles: in MANIFEST.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Folder to deliver into (default: delivery/ beside the manifest).",
)
@_guard
def deliver(manifest: Path, profile_name: str, output: Path | None) -> None:
    """Write MANIFEST's approved photos, ready for an MLS, into DELIVERY/<listing>/.

    Each photo: JPEG in sRGB, upright, long edge and file size within the profile, at
    least its minimum size, numbered in the manifest's order with exteriors first.
    Each listing gets disclosure.csv: every photo, its original, and what AI changed.

    \b
    Example:
      aihd deliver listings.yaml --profile mls-default
      aihd deliver listings.yaml --profile crmls -o /srv/uploads
    """
    from pipeline.ledger import open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.manifest.profiles import find_profile
    from pipeline.review.deliver import deliver as deliver_photos

    loaded = load_manifest(manifest)
    profile = find_profile(profile_name, loaded.delivery_profiles)
    folder = output or loaded.path.parent / "delivery"
    ledger = open_ledger(_ledger_path(manifest))
    try:
        report = deliver_photos(loaded, ledger, profile, folder)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot write the delivery: {exc.strerror}") from None
    finally:
        ledger.close()
    for failure in report.failed:
        click.echo(f"aihd deliver: not delivered: {failure}", err=True)
    for listing, count in report.delivered.items():
        click.echo(f"{folder / listing}: {count} photos")
    for listing in report.withdrawn:
        click.echo(f"aihd deliver: {listing}: no approved photo now; delivery removed", err=True)
    if report.not_approved:
        click.echo(
            f"aihd deliver: {report.not_approved} completed photos not approved, not delivered "
            "(decide with `aihd review` or `aihd approve`)",
            err=True,
        )
    if not report.delivered:
        click.echo("aihd deliver: no approved photos to deliver", err=True)
    sys.exit(report.exit_code)


def _run_until_signal(start: Callable[[StopSwitch], Awaitable[T]]) -> T:
    """Run the coroutine; the first SIGINT/SIGTERM asks it to stop cleanly, a second cuts."""

    from pipeline import eventloop
    from pipeline.ordering.runner import StopSwitch

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
