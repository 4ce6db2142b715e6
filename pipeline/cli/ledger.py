"""Commands that read or change the ledger: ``status``, ``export``, ``ledger``, ``ignore``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli.common import LOCATION, existing_ledger, guard, scope_of, target_ledger
from pipeline.cli.main import main
from pipeline.errors import UsageError
from pipeline.manifest.folders import folder_matches


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
@guard
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

    scope = None if everything else scope_of(target)
    ledger = open_ledger(existing_ledger(target))
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
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="File (default: stdout).")
@click.option("--all", "everything", is_flag=True, help="Every photo of the ledger.")
@guard
def export(target: Path | str, fmt: str, output: Path | None, everything: bool) -> None:
    """Write one row per photo (path, state, order_id, image_id, eta_seconds, error, ...).

    \b
    Example:
      aihd export listings.yaml --format csv -o orders.csv
      aihd export listings.ledger.sqlite --format jsonl | jq .state
    """
    from pipeline.app.export import export_rows
    from pipeline.ledger import open_ledger

    scope = None if everything else scope_of(target)
    ledger = open_ledger(existing_ledger(target))
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


@ledger.command(name="path")
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@guard
def ledger_path(manifest: Path | None) -> None:
    """Print the ledger a manifest (or the default account) uses.

    \b
    Example:
      aihd ledger path listings.yaml
      sqlite3 "$(aihd ledger path listings.yaml)" 'select state, count(*) from photos group by 1'
    """
    click.echo(target_ledger(manifest, None))


@ledger.command(name="import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--manifest", type=click.Path(path_type=Path), help="Into this manifest's ledger.")
@click.option("--into", type=LOCATION, help="Into this ledger file or postgresql:// URL.")
@guard
def ledger_import(source: Path, manifest: Path | None, into: Path | str | None) -> None:
    """Copy an older ledger (e.g. a per-manifest one) into the account's ledger, once.

    Nothing is lost: every photo, order and run is copied; a photo charged in either
    ledger is never ordered again.

    \b
    Example:
      aihd ledger import listings.ledger.sqlite --manifest listings.yaml
    """
    from pipeline.ledger import open_ledger

    target = target_ledger(manifest, into)
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
@guard
def ignore(target: Path, paths: tuple[Path, ...], reason: str) -> None:
    """Leave photos out of every later run (a broken file that would fail each night).

    The photos stay in the ledger as they are; `aihd plan` and `aihd run` no longer find
    them. To leave out a pattern of files, use `exclude:` on the folder in the manifest.

    \b
    Example:
      aihd ignore listings.yaml listings/12-oak-st/inside/corrupt.jpg
    """
    from pipeline.filenames import shown
    from pipeline.ledger import open_ledger

    # As a run finds them: the folder's real path, then the file's own name (not followed).
    absolute = [str(p.expanduser().absolute().parent.resolve() / p.name) for p in paths]
    ledger = open_ledger(existing_ledger(target))
    try:
        added = ledger.ignore_paths(absolute, reason)
        known = {row.path for row in ledger.photos(current_only=False)}
    finally:
        ledger.close()
    for path in absolute:
        if path not in known and not Path(path).exists():
            click.echo(
                f"aihd: warning: {shown(path)}: no such file, and no photo of the ledger", err=True
            )
    click.echo(f"aihd ignore: {added} path(s) newly ignored; later runs leave them out", err=True)
