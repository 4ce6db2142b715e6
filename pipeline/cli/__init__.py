"""The ``aihd`` command line: the group in ``main``, its commands by subject in the modules
beside it (each imports what it runs only when it runs, so ``aihd --help`` stays fast)."""

from pipeline.cli import ledger, ordering, review, serve, tools  # noqa: F401  (they register commands)
from pipeline.cli.main import main

__all__ = ["main"]
