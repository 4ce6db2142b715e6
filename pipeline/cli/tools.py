"""Helpers around the API: ``catalog``, ``sandbox`` (the local emulator), ``schema``."""

from __future__ import annotations

__all__ = ["catalog", "sandbox", "schema"]

import errno
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import SECONDS_A_DAY, Bounded, guard
from pipeline.cli.main import main
from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.app.session import ApiSettings


@main.command()
@click.option("--manifest", type=click.Path(path_type=Path), help="Use its api_key_env and api.")
@click.option(
    "--api",
    "version",
    type=click.Choice(["v1", "v3"]),
    help="v1: the spaces and toggles of image enhancement; v3: the tools, their options and "
    "labels (default: the manifest's api, else AIHD_API_VERSION, else v1).",
)
@click.option("--sandbox", is_flag=True, help="Ask an in-process local emulator.")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@guard
def catalog(manifest: Path | None, version: str | None, sandbox: bool, as_json: bool) -> None:
    """Print what the API offers: v1's spaces and enhancement toggles, or v3's tools.

    \b
    Example:
      aihd catalog            # with AIHD_API_KEY set
      aihd catalog --sandbox
      aihd catalog --api v3 --sandbox
    """
    from pipeline import eventloop
    from pipeline.app.session import ApiSettings, describe_catalog
    from pipeline.manifest.loader import API_VERSION_ENV, load_manifest

    loaded = load_manifest(manifest) if manifest else None
    env = loaded.api_key_env if loaded else "AIHD_API_KEY"
    if version is None:
        version = loaded.api if loaded else os.environ.get(API_VERSION_ENV, "").strip() or "v1"
        if version not in ("v1", "v3"):
            raise UsageError(f"{API_VERSION_ENV}={version!r}: expected v1 or v3 (or use --api)")
    settings = ApiSettings.from_env(env, sandbox=sandbox)
    if version == "v3":
        _v3_catalog(settings, as_json)
        return
    described = eventloop.run(describe_catalog(settings))
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


def _v3_catalog(settings: ApiSettings, as_json: bool) -> None:
    from pipeline import eventloop
    from pipeline.app.session import live_tools
    from pipeline.app.tool_catalog import describe_v3, render_v3

    described = describe_v3(eventloop.run(live_tools(settings)))
    click.echo(json.dumps(described, indent=2) if as_json else render_v3(described))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--key", help="API key the emulator accepts (default: a random one).")
@click.option("--window", default="10/600", show_default=True, help="Order window ORDERS/SECONDS.")
@click.option(
    "--time-scale",
    type=Bounded(0.0, 1000.0, example=0.1, unit="times"),
    default=1.0,
    show_default=True,
    help="Multiply each order's eta by this, 0 to 1000 (0.01: a 30 s eta takes 0.3 s).",
)
@click.option(
    "--latency",
    type=Bounded(0.0, 3600.0, example=0.05),
    default=0.0,
    help="Seconds (0 to 3600) added to each answer.",
)
@click.option(
    "--error-rate",
    type=Bounded(0.0, 1.0, example=0.05, unit="a fraction"),
    default=0.0,
    help="Fraction answered 5xx (0 to 1).",
)
@click.option(
    "--reset-rate",
    type=Bounded(0.0, 1.0, example=0.05, unit="a fraction"),
    default=0.0,
    help="Fraction whose connection is reset (0 to 1).",
)
@click.option(
    "--lost-after-charge-rate",
    type=Bounded(0.0, 1.0, example=0.05, unit="a fraction"),
    default=0.0,
    help="Fraction of order posts charged, then their answer lost (0 to 1).",
)
@click.option(
    "--error-after-charge-rate",
    type=Bounded(0.0, 1.0, example=0.05, unit="a fraction"),
    default=0.0,
    help="Fraction of order (v3: process) posts charged, then answered 500 with the API's "
    "error body (0 to 1).",
)
@click.option(
    "--details-lag",
    type=Bounded(0.0, 3600.0, example=3.0),
    default=0.0,
    help="Seconds (0 to 3600) an order's details show its charge only after it (until then: idle).",
)
@click.option("--seed", type=int, help="Seed the faults, to replay a night exactly.")
@click.option(
    "--error-every",
    type=click.IntRange(0),
    default=0,
    help="Answer every Nth request 500 (2: every other one); certain, not a rate.",
)
@click.option(
    "--fault-path",
    "fault_paths",
    multiple=True,
    metavar="PREFIX",
    help="Faults only on paths starting with this, e.g. /v1/catalog/ (repeatable).",
)
@click.option(
    "--v3",
    "v3_readings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Play this reading of a v3 unknown, e.g. envelope=bare (repeat; names and values: "
    "pipeline/sandbox/v3_readings.py).",
)
@click.option(
    "--webhook",
    "webhook_urls",
    multiple=True,
    metavar="URL",
    help="Send the account's webhooks here (repeat: several receivers take turns).",
)
@click.option(
    "--webhook-duplicates",
    type=click.IntRange(0, 10),
    default=0,
    help="Send each webhook this many more times.",
)
@click.option(
    "--webhook-out-of-order",
    type=click.FloatRange(0.0),
    default=0.0,
    metavar="SECONDS",
    help="Delay each webhook by a random 0..SECONDS, so they may land out of order.",
)
@guard
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
    error_after_charge_rate: float,
    details_lag: float,
    seed: int | None,
    error_every: int,
    fault_paths: tuple[str, ...],
    v3_readings: tuple[str, ...],
    webhook_urls: tuple[str, ...],
    webhook_duplicates: int,
    webhook_out_of_order: float,
) -> None:
    """Serve the local emulator of the API (not the real service) for demos and tests.

    Point aihd at it with AIHD_BASE_URL and the key it prints (or --key). The fault
    options make it misbehave as a real network might, each a fraction of requests.

    \b
    Example:
      aihd sandbox --port 8787 --key sandbox-key-123 --window 10/60 --time-scale 0.1
      AIHD_BASE_URL=http://127.0.0.1:8787 AIHD_API_KEY=sandbox-key-123 aihd run listings.yaml
      aihd sandbox --error-rate 0.05 --lost-after-charge-rate 0.05 --seed 1
      aihd sandbox --error-after-charge-rate 1 --details-lag 5
      aihd sandbox --error-every 2 --fault-path /v1/catalog/
      aihd sandbox --v3 envelope=bare --v3 process_id_field=process_id
      aihd sandbox --webhook http://127.0.0.1:8788/hooks/SECRET --webhook-duplicates 1
    """
    import secrets

    from pipeline.sandbox import Faults, SandboxConfig, Webhooks, run_forever
    from pipeline.sandbox.v3_readings import readings_from_pairs

    orders, seconds = _window_option(window)
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
            error_after_charge_rate=error_after_charge_rate,
            details_lag_seconds=details_lag,
            seed=seed,
            error_every=error_every,
            paths=fault_paths,
        ),
        v3=readings,
        webhooks=Webhooks(
            urls=tuple(webhook_urls),
            duplicates=webhook_duplicates,
            out_of_order_seconds=webhook_out_of_order,
        ),
    )
    for url in webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--webhook {url!r}: expected an http(s) URL")
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


MAX_WINDOW_ORDERS = 100_000


def _window_option(window: str) -> tuple[int, float]:
    """--window ORDERS/SECONDS: a whole number of orders (1 to 100000) per 0 to 86400 s."""
    fix = "expected ORDERS/SECONDS, e.g. --window 10/600"
    try:
        orders_text, seconds_text = window.split("/")
        orders, seconds = int(orders_text), float(seconds_text)
    except ValueError:
        raise UsageError(f"--window {window!r}: {fix}") from None
    if not 1 <= orders <= MAX_WINDOW_ORDERS:
        raise UsageError(f"--window {window!r}: orders must be 1 to {MAX_WINDOW_ORDERS}; {fix}")
    if not (math.isfinite(seconds) and 0 < seconds <= SECONDS_A_DAY):
        raise UsageError(
            f"--window {window!r}: seconds must be more than 0, at most a day "
            f"({SECONDS_A_DAY:g}); {fix}"
        )
    return orders, seconds


@main.command()
@guard
def schema() -> None:
    """Print the manifest's JSON Schema, for editors that check YAML as it is typed.

    \b
    Example:
      aihd schema > aihd-manifest.schema.json
    """
    from pipeline.manifest.loader import manifest_json_schema

    click.echo(json.dumps(manifest_json_schema(), indent=2))
