"""Review and delivery: look before and after, decide, deliver MLS-ready photos."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import existing_ledger, guard, load_with_warnings
from pipeline.cli.main import main
from pipeline.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:8787"


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
@click.option(
    "--serve",
    is_flag=True,
    help="Serve the review desk instead: decisions go straight into the ledger.",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="With --serve: where the desk listens (port 0: any free one; 0.0.0.0: every "
    "address, still behind its login link).",
)
@guard
def review(
    manifest: Path, output: Path | None, apply_file: Path | None, serve: bool, listen: str
) -> None:
    """Write a static before/after review page of MANIFEST's photos, or record its decisions;
    or, with --serve, serve the review desk.

    The page (index.html, its assets and thumbnails) opens from file:// with no server:
    before/after slider, filters, keys a / r to approve / reject. It cannot write the
    ledger: export its decisions and record them with --apply.

    The desk (--serve) is the same page served: each decision is saved in the ledger at
    once, progress updates by itself, and it orders again and delivers. It prints a login
    link that lets one browser in, once; Ctrl-C stops it.

    \b
    Example:
      aihd review listings.yaml                  # prints the page's file:// link
      aihd review listings.yaml --apply ~/Downloads/aihd-decisions.json
      aihd review listings.yaml --serve          # prints the desk's login link
    """
    from pipeline.ledger import Decision, open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.review.decisions import apply_decisions, manifest_rows, read_decisions_file
    from pipeline.review.page import write_review

    if serve:
        if apply_file is not None or output is not None:
            raise UsageError(
                "--serve takes neither --apply nor --output: the desk writes the ledger"
            )
        _serve_desk(manifest, listen)
        return
    if listen != DEFAULT_LISTEN:
        raise UsageError(
            f"--listen goes with --serve: aihd review {manifest} --serve --listen {listen}"
        )
    loaded = load_manifest(manifest)
    ledger = open_ledger(existing_ledger(manifest))
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


def _serve_desk(manifest: Path, listen: str) -> None:
    from pipeline.app.desk import desk_settings, serve_desk
    from pipeline.cli.common import run_until_signal
    from pipeline.review.desk.guards import is_loopback

    loaded = load_with_warnings(manifest)
    ledger = existing_ledger(manifest)
    host, port = _listen_address(listen)
    settings = desk_settings([loaded], ledger, listen_host=host)

    def on_listening(url: str, login_url: str) -> None:
        click.echo(
            f"aihd review: the review desk of {loaded.path.name} on {url}{settings.prefix}/ "
            "(Ctrl-C stops it); open this link to log in (it works once):",
            err=True,
        )
        if not is_loopback(host):
            click.echo(
                f"aihd review: warning: listening on {host}: other machines can reach the desk "
                "over plain HTTP, where the login link and its cookie can be read on the way; "
                "prefer 127.0.0.1 behind an HTTPS proxy (README: Always on)",
                err=True,
            )
        click.echo(login_url)

    run_until_signal(lambda stop: serve_desk(settings, (host, port), stop, on_listening))
    click.echo("aihd review: the desk stopped", err=True)


def _listen_address(listen: str) -> tuple[str, int]:
    host, colon, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port_text)


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
    ledger = open_ledger(existing_ledger(manifest))
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
@guard
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
@guard
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
@guard
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
    ledger = open_ledger(existing_ledger(manifest))
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
