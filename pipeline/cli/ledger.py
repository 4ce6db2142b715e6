"""Commands that read or change the ledger: ``status``, ``export``, ``ledger``, ``ignore``."""

from __future__ import annotations

__all__ = ["export", "ignore", "ledger", "ledger_import", "ledger_init", "ledger_path", "status"]

import sys
from pathlib import Path

import click

from pipeline.cli.common import (
    LOCATION,
    existing_ledger,
    guard,
    ledger_for,
    scope_of,
    target_ledger,
)
from pipeline.cli.main import main
from pipeline.errors import UsageError
from pipeline.manifest.folders import folder_matches


@main.command()
@click.argument("target", metavar="MANIFEST|LEDGER", type=LOCATION)
@click.option(
    "--failed", "list_failed", is_flag=True, help="List failed and unknown photos, and why."
)
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
            # Hints name the target (a URL's password never goes into a hint: none then).
            shown = "" if isinstance(target, str) else str(target.absolute())
            click.echo(render_status(ledger, chosen, failed=list_failed, scope=scope, target=shown))
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
    """Find, create, and import into, the account's ledger (where every order is recorded).

    \b
    Example:
      aihd ledger path listings.yaml
      aihd ledger init --into /srv/aihd/studio.ledger.sqlite
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


@ledger.command(name="init")
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@click.option("--into", type=LOCATION, help="This ledger file or postgresql:// URL.")
@guard
def ledger_init(manifest: Path | None, into: Path | str | None) -> None:
    """Create a new, empty ledger: the manifest's (or the default account's), or --into's.

    A run creates its ledger by itself where no file exists; an empty file at the ledger's
    path is refused instead (a ledger emptied by a failed copy or a full disk would order
    every photo again). When that file really is a new ledger, this makes it one. A file
    that holds anything (another tool's, or a ledger) is never overwritten.

    \b
    Example:
      aihd ledger init listings.yaml
      aihd ledger init --into /srv/aihd/studio.ledger.sqlite
    """
    from pipeline.ledger import open_ledger
    from pipeline.ledger.stores import is_url

    target = target_ledger(manifest, into)
    fresh = not is_url(target) and (not Path(target).exists() or Path(target).stat().st_size == 0)
    opened = open_ledger(target, init=True)
    try:
        photos = sum(opened.counts().values())
    finally:
        opened.close()
    if fresh:
        click.echo(f"aihd ledger init: created the ledger {opened.path}")
    else:
        click.echo(
            f"aihd ledger init: {opened.path} is an aihd ledger ({photos} photos): nothing to do"
        )


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

    A photo is ignored by its content: renamed, moved or copied, it stays left out (an
    edited photo is a new one). A file that cannot be read as a photo is ignored by its
    path. The photos stay in the ledger as they are; `aihd plan` and `aihd run` no longer
    find them. Before the first run, this creates the manifest's ledger as a run would. To
    leave out a pattern of files, use `exclude:` on the folder in the manifest.

    \b
    Example:
      aihd ignore listings.yaml listings/12-oak-st/inside/corrupt.jpg
    """
    from pipeline.filenames import shown
    from pipeline.ledger import open_ledger
    from pipeline.manifest.loader import load_manifest
    from pipeline.ordering.scan import check, stat_file

    # As a run finds them: the folder's real path, then the file's own name (not followed).
    absolute = [str(p.expanduser().absolute().parent.resolve() / p.name) for p in paths]
    checked = [check(st) if st.size >= 0 else None for st in map(stat_file, absolute)]
    if target.suffix.lower() in (".yaml", ".yml"):
        location = ledger_for(load_manifest(target), None)  # made if new, as a run would
    else:
        location = existing_ledger(target)
    ledger = open_ledger(location)
    try:
        rows = ledger.photos(current_only=False)
        known = {row.path for row in rows}
        # A file that cannot be read now: its path, and the content the ledger knows it by.
        stored = {row.path: row.sha256 for row in rows if row.sha256}
        contents = [
            (c.sha256 if c is not None and c.sha256 else stored.get(path, ""), path)
            for c, path in zip(checked, absolute, strict=True)
        ]
        by_path = [p for c, p in zip(checked, absolute, strict=True) if c is None or not c.sha256]
        added = ledger.ignore_contents([(sha, p) for sha, p in contents if sha], reason)
        added += ledger.ignore_paths(by_path, reason)
    finally:
        ledger.close()
    for path, found in zip(absolute, checked, strict=True):
        if found is None and path not in known:
            click.echo(
                f"aihd: warning: {shown(path)}: no such file, and no photo of the ledger", err=True
            )
    click.echo(
        f"aihd ignore: {added} newly ignored ({len(by_path)} by path: files that cannot be "
        "read as photos); later runs leave them out, renamed or copied",
        err=True,
    )
