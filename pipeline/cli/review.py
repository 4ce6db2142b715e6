"""Review and delivery: look before and after, decide, deliver MLS-ready photos."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import existing_ledger, guard
from pipeline.cli.main import main
from pipeline.errors import UsageError


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
@guard
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
    help="Folder to deliver into (default: delivery/ beside the manifest); never a photo folder.",
)
@click.option(
    "--partial",
    is_flag=True,
    help="Also deliver listings whose photos are not all decided yet (their approved ones).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be written, moved or removed.")
@guard
def deliver(
    manifest: Path, profile_name: str, output: Path | None, partial: bool, dry_run: bool
) -> None:
    """Write MANIFEST's approved photos, ready for an MLS, into DELIVERY/<listing>/.

    Each photo: JPEG in sRGB, upright, long edge and file size within the profile, at
    least its minimum size, numbered in the manifest's order with exteriors first.
    Each listing gets disclosure.csv: every photo, its original, and what AI changed.
    A listing is delivered once every completed photo of it is approved or rejected
    (--partial: its approved ones now). Deliver deletes only files it wrote: anything
    else in a listing's folder is moved aside, and a folder that is, holds or lies in
    a photo folder is refused.

    \b
    Example:
      aihd deliver listings.yaml --profile mls-default
      aihd deliver listings.yaml --profile crmls -o /srv/uploads --dry-run
    """
    import shlex

    from pipeline.ledger import open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.manifest.profiles import find_profile
    from pipeline.review.deliver import deliver as deliver_photos

    loaded = load_manifest(manifest)
    profile = find_profile(profile_name, loaded.delivery_profiles)
    folder = output or loaded.path.parent / "delivery"
    where = "-o" if output is not None else "the default delivery folder"
    ledger = open_ledger(existing_ledger(manifest))
    try:
        report = deliver_photos(
            loaded, ledger, profile, folder, partial=partial, dry_run=dry_run, where=where
        )
    except OSError as exc:
        raise UsageError(f"{folder}: cannot write the delivery: {exc.strerror}") from None
    finally:
        ledger.close()
    for line in report.planned:
        click.echo(line)
    for failure in report.failed:
        click.echo(f"aihd deliver: not delivered: {failure}", err=True)
    if not dry_run:
        for target, count in report.delivered.items():
            click.echo(f"{target}: {count} photos")
    for was, now in report.clearing.moved:
        click.echo(
            f"aihd deliver: warning: {was} was not written by aihd: moved to {now}, not deleted",
            err=True,
        )
    for listing in report.withdrawn:
        done = "would be removed" if dry_run else "removed"
        click.echo(f"aihd deliver: {listing}: no approved photo now; delivery {done}", err=True)
    for label, undecided, count in report.undecided:
        click.echo(
            f"aihd deliver: {label}: {undecided} of {count} photos not decided yet; "
            "not delivered (decide them, or --partial)",
            err=True,
        )
    if report.undecided:
        again = ["aihd", "deliver", str(loaded.path), "--profile", profile.name]
        again += ["-o", str(report.folder), "--partial"]
        click.echo(
            f"aihd deliver: to decide: `aihd review {shlex.quote(str(loaded.path))}`; to "
            f"deliver the approved photos anyway: `{shlex.join(again)}`",
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
