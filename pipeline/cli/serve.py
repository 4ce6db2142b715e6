"""``aihd serve`` (the always-on process) and ``aihd upscale`` (wish completed photos upscaled)."""

from __future__ import annotations

__all__ = ["STOP_SECONDS", "serve", "until_signal", "upscale"]

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import (
    LOCATION,
    duration_option,
    guard,
    is_quiet,
    ledger_for,
    load_with_warnings,
)
from pipeline.cli.main import main
from pipeline.errors import UsageError

if TYPE_CHECKING:
    import asyncio

    from pipeline.stopping import StopSwitch

STOP_SECONDS = 5.0  # a SIGTERM lets order POSTs in flight this long; the whole stop is < 10 s


@main.command()
@click.argument("manifests", metavar="MANIFEST...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--listen",
    default="127.0.0.1:8787",
    show_default=True,
    help="HOST:PORT for webhooks, /healthz, /metrics and the review desk (port 0: any free one).",
)
@click.option(
    "--quiet-period",
    metavar="DURATION",
    help="Take a photo once its folder was quiet this long, e.g. 2s "
    "(default: the manifest's quiet_period, else 60s).",
)
@click.option(
    "--rescan",
    metavar="DURATION",
    help="Look at every folder again this often, e.g. 10m (default: the "
    "manifest's rescan, else 10m).",
)
@click.option(
    "--poll",
    "poll_every",
    metavar="DURATION",
    help="Watch by polling this often, e.g. 2s: for network mounts, where inotify sees no "
    "other machine's writes.",
)
@click.option(
    "--poll-after",
    metavar="DURATION",
    default="5m",
    show_default=True,
    help="Poll a result this long after its eta when no webhook brought it.",
)
@click.option("--ledger", type=LOCATION, help="Ledger file or postgresql:// URL.")
@click.option("--sandbox", is_flag=True, help="Serve against an in-process local emulator.")
@click.option(
    "--print-webhook-url",
    is_flag=True,
    help="Print the URL to paste in the dashboard's webhook setting, and exit.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="With --print-webhook-url: the HTTPS address your proxy serves.",
)
@click.option("--log-file", type=click.Path(path_type=Path), help="Append timestamped logs here.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for an API answer before giving up on it.",
)
@click.option(
    "--settle",
    type=click.FloatRange(0.0),
    default=120.0,
    show_default=True,
    help="Seconds to let the API settle before checking an order whose answer was lost.",
)
@guard
def serve(
    manifests: tuple[Path, ...],
    listen: str,
    quiet_period: str | None,
    rescan: str | None,
    poll_every: str | None,
    poll_after: str,
    ledger: Path | str | None,
    sandbox: bool,
    print_webhook_url: bool,
    public_url: str | None,
    log_file: Path | None,
    quiet: bool,
    request_timeout: float,
    settle: float,
) -> None:
    """Watch MANIFEST's folders all day: order each photo once it is complete, collect
    results by webhook (polling as the fallback), upscale, serve /healthz, /metrics and the
    review desk (/review/; it prints a login link that works once).

    SIGTERM stops it cleanly (exit 0); SIGHUP reads the manifests again.

    \b
    Example:
      aihd serve listings.yaml                      # 127.0.0.1:8787, behind your proxy
      aihd serve --print-webhook-url --public-url https://studio.example
      aihd serve sample_manifests/demo.yaml --sandbox --quiet-period 2s
    """
    from pipeline.app.serving import ServeRequest, one_account, serve_account, webhook_url
    from pipeline.app.session import SANDBOX_TIME_SCALE, ApiSettings
    from pipeline.logs import setup_logging
    from pipeline.manifest.accounts import key_fingerprint, state_folder, window_account
    from pipeline.ordering.runner import RunLimits
    from pipeline.review.desk.guards import is_loopback
    from pipeline.serve import ServeOptions, webhook_secret

    if print_webhook_url:
        if public_url is None:
            raise UsageError(
                "--print-webhook-url needs --public-url, the HTTPS address your proxy serves: "
                "aihd serve --print-webhook-url --public-url https://studio.example"
            )
        click.echo(webhook_url(public_url))
        return
    if public_url is not None:
        raise UsageError("--public-url only goes with --print-webhook-url")
    if not manifests:
        raise UsageError("name at least one manifest: aihd serve listings.yaml")
    loaded = tuple(load_with_warnings(path) for path in manifests)
    one_account(loaded)
    settings = ApiSettings.from_env(loaded[0].api_key_env, sandbox=sandbox)
    host, port = _address(listen)
    options = ServeOptions(
        quiet_period=duration_option("--quiet-period", quiet_period),
        rescan=duration_option("--rescan", rescan),
        poll_seconds=duration_option("--poll", poll_every),
        poll_after=duration_option("--poll-after", poll_after) or 0.0,
        stop_within=min(STOP_SECONDS, request_timeout),
        eta_scale=SANDBOX_TIME_SCALE if sandbox else 1.0,
        limits=RunLimits(
            concurrency=loaded[0].concurrency,
            settle_seconds=settle,
            drain_seconds=request_timeout,
            key_fingerprint=key_fingerprint(settings.api_key),
            account=window_account(settings.base_url, loaded[0].account, sandbox=settings.sandbox),
        ),
    )
    request = ServeRequest(
        manifests=loaded,
        ledger_path=ledger_for(loaded[0], ledger, sandbox=sandbox),
        listen=(host, port),
        options=options,
        request_timeout=request_timeout,
        command=" ".join(["aihd", *sys.argv[1:]]),
        secret=webhook_secret(state_folder()),
    )
    setup_logging(
        log_file,
        verbose=not is_quiet(quiet, log_file),
        secret=settings.api_key,
        also_secret=request.secret,
    )

    def on_login(login_url: str) -> None:
        # On stdout, not in the log (--log-file): the link lets one browser in, once.
        click.echo(
            "aihd serve: the review desk; open this link to log in (it works once):", err=True
        )
        if not is_loopback(host):
            click.echo(
                f"aihd serve: warning: listening on {host}: other machines can reach the desk "
                "over plain HTTP, where the login link and its cookie can be read on the way; "
                "prefer 127.0.0.1 (README: Always on)",
                err=True,
            )
        click.echo(login_url)

    until_signal(lambda stop, reload: serve_account(request, settings, stop, reload, on_login))


def _address(listen: str) -> tuple[str, int]:
    host, colon, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    return host, int(port_text)


def until_signal(begin: Callable[[StopSwitch, asyncio.Event], Awaitable[None]]) -> None:
    """Run the service; SIGTERM/SIGINT stop it cleanly (exit 0), a second one cuts;
    SIGHUP reads the manifests again."""
    import asyncio
    import signal

    from pipeline import eventloop
    from pipeline.stopping import StopSwitch

    stop = StopSwitch()

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        reload = asyncio.Event()
        hits = 0

        def on_stop() -> None:
            nonlocal hits
            hits += 1
            if hits == 1:
                click.echo(
                    "aihd: stopping (signal): no new photos; the ledger stays consistent", err=True
                )
                stop.set("interrupted")
            elif task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_stop)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        await begin(stop, reload)

    try:
        eventloop.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    click.echo("aihd serve: stopped", err=True)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option(
    "--folder",
    "folder_patterns",
    multiple=True,
    metavar="PATTERN",
    help="Only the manifest's folders whose name matches this glob; repeatable.",
)
@click.option("--ledger", type=LOCATION, help="Ledger file or postgresql:// URL.")
@guard
def upscale(manifest: Path, folder_patterns: tuple[str, ...], ledger: Path | str | None) -> None:
    """Upscale MANIFEST's photos already completed (v1 only), through `aihd serve`.

    The upscaled photo arrives by webhook only: this records the wish, and the running
    `aihd serve` asks for each upscale once and places it beside the enhanced photo.

    \b
    Example:
      aihd upscale listings.yaml --folder 'listings/12-oak-st/*'
      aihd serve listings.yaml
    """
    from pipeline.app.serving import wish_upscales

    loaded = load_with_warnings(manifest, folder_patterns=folder_patterns)
    added, before, waiting = wish_upscales(loaded, ledger_for(loaded, ledger))
    click.echo(
        f"aihd upscale: {added} photos to upscale ({before} asked for before); "
        f"`aihd serve {manifest}` asks for each once and receives it by webhook"
    )
    if waiting:
        click.echo(
            f"  {waiting} photos of these folders are not enhanced yet: add 'upscale: true' to "
            "their folder in the manifest to upscale them once they are",
            err=True,
        )
