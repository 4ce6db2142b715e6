"""The ``aihd`` command group. Data goes to stdout, messages and errors to stderr.

Every foreseeable mistake is a ``PipelineError`` and ends as one line on stderr and an exit
code from the spec, never a traceback (see ``common.guard``)."""

from __future__ import annotations

__all__ = ["main"]

import io
import sys

import click

from pipeline import __version__
from pipeline.filenames import SHOWN_ERRORS


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
    # A file name that is not UTF-8 is shown escaped (pipeline.filenames) wherever aihd prints
    # one; any other text a stream cannot encode is escaped too, never a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=SHOWN_ERRORS)
