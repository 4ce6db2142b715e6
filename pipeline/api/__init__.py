"""The AI HomeDesign API, one module per part (docs/STYLE.md).

- ``v1_shapes`` / ``v3_shapes``: paths, names and JSON records of each version, shared with the
  sandbox (which shares nothing else with the client);
- ``records``: what a client answers with, whichever version it speaks;
- ``errors``: the API's errors (``pipeline.errors`` holds the whole tree);
- ``transport``: the one HTTP boundary both clients share (key redaction, size caps, deadlines,
  public-only result hosts, error mapping);
- ``v1`` / ``v3``: one client per version; ``interface``: the ``PhotoApi`` protocol the runner,
  plan and collect use; ``factory``: opens the client a manifest asks for;
- ``tools`` (over ``tool_table``): every tool and toggle aihd knows, each with a human label and
  whether it alters what a photo shows (``label``, ``alters``, ``describe``);
- ``v3_slugs``: a folder's v3 tool and options as the API's slugs (its order spec).

This module re-exports the v1 shapes, so ``from pipeline import api; api.SUBMIT_PATH`` keeps
working (the sandbox uses it). It imports nothing heavy: the sandbox and ``--help`` load it.
"""

from pipeline.api import v1_shapes
from pipeline.api.v1_shapes import *  # noqa: F403  (the names v1_shapes.__all__ lists)

__all__ = v1_shapes.__all__
