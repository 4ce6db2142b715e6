"""``python -m pipeline`` is the ``aihd`` command."""

from pipeline.cli import main

main()
