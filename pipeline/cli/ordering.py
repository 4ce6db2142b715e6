"""Commands that order and collect: ``run``, ``plan``, ``collect``, ``reorder``."""

from __future__ import annotations

__all__ = ["collect_command", "plan", "reorder", "run"]

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from pipeline.cli.common import (
    LOCATION,
    SECONDS_A_DAY,
    Bounded,
    duration_option,
    existing_ledger,
    finish,
    guard,
    is_quiet,
    ledger_for,
    load_with_warnings,
    refuse_upscales,
    require_ledger,
    run_until_signal,
    unattended_options,
)
from pipeline.cli.main import main
from pipeline.errors import UsageError
from pipeline.filenames import shell_join


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
@unattended_options
@click.option(
    "--settle",
    type=Bounded(0.0, SECONDS_A_DAY, example=120.0),
    default=120.0,
    show_default=True,
    help="Seconds (0 to 86400) an order whose answer was lost (a 5xx, a reset, a timeout) "
    'must read "not received" before it is posted again; keep it above the longest lag of '
    "its details.",
)
@guard
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

    loaded = load_with_warnings(manifest, strict=strict, folder_patterns=folder_patterns)
    refuse_upscales(loaded, "run")
    bar = not no_progress and sys.stderr.isatty()
    quiet = is_quiet(quiet, log_file)
    settings = ApiSettings.from_env(loaded.api_key_env, sandbox=sandbox)
    max_seconds = duration_option("--max-duration", max_duration)
    setup_logging(log_file, verbose=not bar and not quiet, secret=settings.api_key)
    request = RunRequest(
        manifest=loaded,
        ledger_path=ledger_for(loaded, ledger, sandbox=sandbox),
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
    finish(run_until_signal(lambda stop: run_manifest(request, settings, stop)), as_json, quiet)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--sandbox", is_flag=True, help="Ask an in-process local emulator.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
@click.option("--strict", is_flag=True, help="Refuse a folder that is gone (default: skip it).")
@click.option(
    "--serve", "for_serve", is_flag=True,
    help="Plan for `aihd serve`, which has the webhook receiver upscale: true needs.",
)  # fmt: skip
@guard
def plan(manifest: Path, sandbox: bool, as_json: bool, strict: bool, for_serve: bool) -> None:
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

    loaded = load_with_warnings(manifest, strict=strict)
    if not for_serve:
        refuse_upscales(loaded, "run")
    settings = ApiSettings.from_env(loaded.api_key_env, sandbox=sandbox)
    planned = eventloop.run(
        plan_manifest(loaded, settings, ledger_for(loaded, None, sandbox=sandbox))
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
@click.option(
    "--sandbox",
    is_flag=True,
    help="Collect from the in-process local emulator that `run --sandbox` ordered from.",
)
@unattended_options
@guard
def collect_command(
    target: Path | str,
    wait: bool,
    timeout_text: str | None,
    output_dir: Path | None,
    sandbox: bool,
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
      aihd collect sample_manifests/demo.yaml --sandbox
    """
    from pipeline.app.session import ApiSettings, CollectRequest, collect_results
    from pipeline.logs import setup_logging
    from pipeline.manifest.loader import refuse_output_over_photos

    if timeout_text is not None and not wait:
        raise UsageError(
            f"--timeout {timeout_text} only applies with --wait: add --wait, or drop --timeout "
            "(without --wait, collect asks once and returns)"
        )
    bar = not no_progress and sys.stderr.isatty()
    quiet = is_quiet(quiet, log_file)
    timeout = duration_option("--timeout", timeout_text)
    again = ["aihd", "collect", str(target if isinstance(target, str) else target.absolute())]
    again += [*(["--sandbox"] if sandbox else []), "--wait"]
    common: dict[str, Any] = {
        "wait": wait,
        "timeout": timeout,
        "progress_bar": bar,
        "request_timeout": request_timeout,
        "command": " ".join(["aihd", *sys.argv[1:]]),
        "again": shell_join(again) if isinstance(target, Path) else "",
    }
    if isinstance(target, Path) and target.suffix.lower() in (".yaml", ".yml"):
        manifest = load_with_warnings(target)
        settings = ApiSettings.from_env(manifest.api_key_env, sandbox=sandbox)
        request = CollectRequest.for_manifest(
            manifest, ledger_path=existing_ledger(target, sandbox=sandbox), **common
        )
        if output_dir is not None:
            refuse_output_over_photos(output_dir.resolve(), manifest, where="--output")
    else:
        ledger_path = existing_ledger(target)
        if isinstance(ledger_path, str):
            raise UsageError(
                f"{ledger_path}: name the manifest instead of the ledger's URL: its output "
                "folder is where the results go"
            )
        settings = ApiSettings.from_env(sandbox=sandbox)
        request = CollectRequest.for_ledger(ledger_path, **common)
    if output_dir is not None:
        request = replace(request, output=output_dir.resolve())
    if folder_patterns:
        request = replace(request, folders=folder_patterns)
    setup_logging(log_file, verbose=not bar and not quiet, secret=settings.api_key)
    require_ledger(request.ledger_path)
    finish(run_until_signal(lambda stop: collect_results(request, settings, stop)), as_json, quiet)


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Really clear the charge: the next run pays again.")
@guard
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

    is_manifest = isinstance(target, Path) and target.suffix.lower() in (".yaml", ".yml")
    run = shell_join(["aihd", "run", str(Path(target).absolute())]) if is_manifest else ""
    ledger = open_ledger(existing_ledger(target))
    try:
        lines, photo_ids = plan_reorder(ledger, [str(p.resolve()) for p in photos], run)
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
            + (f"the next `{run}`" if run else "the next run of their manifest")
        )
    finally:
        ledger.close()
