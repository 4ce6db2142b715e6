"""``python -m pipeline`` is the ``aihd`` command."""

from pipeline.cli.commands import main

main()
