"""The ``aihd`` command group. Data goes to stdout, messages and errors to stderr.

Every foreseeable mistake is a ``PipelineError`` and ends as one line on stderr and an exit
code from the spec, never a traceback (see ``common.guard``)."""

from __future__ import annotations

__all__ = ["main"]

import click

from pipeline import __version__


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
