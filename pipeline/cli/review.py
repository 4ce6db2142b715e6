"""Review and delivery: look before and after, decide, deliver MLS-ready photos."""

from __future__ import annotations

__all__ = ["DEFAULT_LISTEN", "approve", "deliver", "reject", "review"]

import sys
from pathlib import Path

import click

from pipeline.cli.common import existing_ledger, guard, load_with_warnings
from pipeline.cli.main import main
from pipeline.errors import UsageError
from pipeline.filenames import shell_join, shell_quoted

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
        again = shell_join(["aihd", "review", str(manifest), "--serve", "--listen", listen])
        raise UsageError(f"--listen goes with --serve: {again}")
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


def _decide(
    manifest: Path, paths: tuple[Path, ...], folders: tuple[str, ...], verdict: str
) -> None:
    from pipeline.ledger import Decision, open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.review.decisions import (
        manifest_rows,
        record_decision,
        reorder_command,
        select_photos,
    )

    if bool(paths) == bool(folders):
        raise UsageError(
            f"aihd {verdict}: give photo paths or --folder PATTERN (one of the two; --folder "
            "may be repeated)"
        )
    decision = Decision.APPROVED if verdict == "approve" else Decision.REJECTED
    loaded = load_manifest(manifest)
    ledger = open_ledger(existing_ledger(manifest))
    try:
        photos = select_photos(loaded, manifest_rows(loaded, ledger), paths, folders)
        count = record_decision(ledger, photos, decision, f"aihd {verdict}")
    finally:
        ledger.close()
    click.echo(f"aihd {verdict}: {count} photo{'s' if count != 1 else ''} {decision.value}")
    if decision is Decision.REJECTED and count:
        click.echo(
            f"aihd {verdict}: rejected photos are not delivered, nor ordered again; to order "
            f"one again (1 credit): `{reorder_command(loaded, [photos[0].path])}`",
            err=True,
        )


_FOLDER_HELP = (
    "Every completed photo of the manifest's folders whose name matches this glob "
    "(e.g. 'listings/12-oak-st/*'), or of this folder; repeatable."
)


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--folder", "folders", multiple=True, metavar="PATTERN", help=_FOLDER_HELP)
@guard
def approve(manifest: Path, paths: tuple[Path, ...], folders: tuple[str, ...]) -> None:
    """Approve completed photos of MANIFEST (by original or result path) for delivery.

    \b
    Example:
      aihd approve listings.yaml listings/12-oak-st/inside/kitchen.jpg
      aihd approve listings.yaml --folder listings/12-oak-st/outside
      aihd approve listings.yaml --folder 'listings/92-pine-rd/*'
    """
    _decide(manifest, paths, folders, "approve")


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--folder", "folders", multiple=True, metavar="PATTERN", help=_FOLDER_HELP)
@guard
def reject(manifest: Path, paths: tuple[Path, ...], folders: tuple[str, ...]) -> None:
    """Reject completed photos of MANIFEST: they are not delivered, nor ordered again.

    Only the explicit `aihd reorder MANIFEST PATH... --yes` orders a rejected photo again
    (1 credit each).

    \b
    Example:
      aihd reject listings.yaml enhanced/listings/12-oak-st/inside/den.jpg
      aihd reject listings.yaml --folder listings/12-oak-st/inside --folder listings/9-elm/inside
    """
    _decide(manifest, paths, folders, "reject")


@main.command()
@click.argument("manifest", type=click.Path(path_type=Path), required=False)
@click.option(
    "--profile",
    "profile_name",
    default="mls-default",
    show_default=True,
    help="A delivery profile: built in (mls-default, crmls, stellar, smartmls, california, "
    "no-text) or one under delivery_profiles: in MANIFEST.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Folder to deliver into (default: delivery/ beside the manifest); never a photo folder.",
)
@click.option(
    "--listing",
    "only",
    multiple=True,
    metavar="NAME",
    help="Only this listing (its name, folder or a glob, e.g. '12-oak-*'); repeatable.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Also deliver listings whose photos are not all decided yet (their approved ones).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what would be written, moved or removed, and why each photo is left out.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--list-profiles",
    is_flag=True,
    help="Show the delivery profiles (MANIFEST's too, if given), their rules and sources.",
)
@guard
def deliver(
    manifest: Path | None,
    profile_name: str,
    output: Path | None,
    only: tuple[str, ...],
    partial: bool,
    dry_run: bool,
    as_json: bool,
    list_profiles: bool,
) -> None:
    """Write MANIFEST's approved photos, ready for an MLS, into DELIVERY/<listing>/.

    Each photo: JPEG in sRGB, upright, shaped, sized and weighed as the profile says,
    numbered in the manifest's order with exteriors first. A photo AI altered (anything
    beyond exposure, colour, sharpness, straightening) gets the profile's caption, its
    watermark and its original beside it where the profile asks. Each listing gets
    disclosure.csv (RESO Media-like: every photo and what AI altered in it, in words) and
    remarks.txt when the profile has a remarks prefix. Only photos whose result, decision or
    profile changed are encoded again. A listing is delivered once every completed photo of
    it is approved or rejected (--partial: its approved ones now). Deliver deletes only
    files it wrote: anything else in a listing's folder is moved aside, and a folder that
    is, holds or lies in a photo folder is refused.

    \b
    Example:
      aihd deliver --list-profiles
      aihd deliver listings.yaml --profile crmls --listing 12-oak-st --dry-run
      aihd deliver listings.yaml --profile stellar -o /srv/uploads --json
    """
    import json

    from pipeline.ledger import open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.manifest.profiles import BUILT_IN, find_profile, profiles_text
    from pipeline.review.deliver import deliver as deliver_photos

    loaded = load_manifest(manifest) if manifest is not None else None
    if list_profiles:
        mine = dict(loaded.delivery_profiles) if loaded is not None else {}
        click.echo(profiles_text(BUILT_IN, mine, loaded.path.name if loaded else ""))
        return
    if loaded is None or manifest is None:
        raise UsageError(
            "aihd deliver: give the MANIFEST to deliver, e.g. `aihd deliver listings.yaml`; "
            "to see the profiles: `aihd deliver --list-profiles`"
        )
    profile = find_profile(profile_name, loaded.delivery_profiles)
    folder = output or loaded.path.parent / "delivery"
    where = "-o" if output is not None else "the default delivery folder"
    ledger = open_ledger(existing_ledger(manifest))
    try:
        report = deliver_photos(
            loaded,
            ledger,
            profile,
            folder,
            partial=partial,
            dry_run=dry_run,
            where=where,
            only=only,
        )
    except OSError as exc:
        raise UsageError(f"{folder}: cannot write the delivery: {exc.strerror}") from None
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2))
    else:
        for line in report.planned:
            click.echo(line)
    for failure in report.failed:
        click.echo(f"aihd deliver: not delivered: {failure}", err=True)
    for listing in report.listings:
        if not as_json and not dry_run and listing.folder in report.delivered:
            originals = f"{listing.originals} originals among them; " if listing.originals else ""
            click.echo(
                f"{listing.folder}: {listing.photos} photos ({originals}{listing.encoded} "
                f"encoded, {listing.reused} unchanged)"
            )
        if not dry_run:
            for left in listing.left_out:
                if left.over_limit:
                    click.echo(f"aihd deliver: left out: {left.path}: {left.why}", err=True)
    for was, now in report.clearing.moved:
        click.echo(
            f"aihd deliver: warning: {was} was not written by aihd: moved to {now}, not deleted",
            err=True,
        )
    for listing_name in report.withdrawn:
        done = "would be removed" if dry_run else "removed"
        click.echo(
            f"aihd deliver: {listing_name}: no approved photo now; delivery {done}", err=True
        )
    for label, undecided, count in report.undecided:
        click.echo(
            f"aihd deliver: {label}: {undecided} of {count} photos not decided yet; "
            "not delivered (decide them, or --partial)",
            err=True,
        )
    if report.undecided:
        again = ["aihd", "deliver", str(loaded.path), "--profile", profile.name]
        again += ["-o", str(report.folder)]
        for pattern in only:
            again += ["--listing", pattern]
        again.append("--partial")
        click.echo(
            f"aihd deliver: to decide: `aihd review {shell_quoted(str(loaded.path))}`; to "
            f"deliver the approved photos anyway: `{shell_join(again)}`",
            err=True,
        )
    if report.not_approved:
        click.echo(
            f"aihd deliver: {report.not_approved} completed photos not approved (rejected), "
            "not delivered",
            err=True,
        )
    if not report.delivered and not report.undecided:
        click.echo("aihd deliver: no approved photos to deliver", err=True)
    sys.exit(report.exit_code)
