"""`aihd run` loads what a run needs, and nothing for the other commands.

Start-up is most of a re-run over finished photos (bench/RESULTS.md); these modules cost it
without being used: pydantic (keys.py checks a well-written manifest; pydantic only words a bad
one's error), the review page and desk, `aihd serve`, the emulator, the PostgreSQL store, the
plan. A real process, as a user starts it; which modules it held is read as it exits.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.sandbox import Sandbox
from tests.cli_helpers import FAST, aihd_env, write_manifest

# `python -m pipeline ARGS`, writing the names of its modules to MODULES_FILE as it exits.
_RUN_AND_LIST_MODULES = """
import atexit, os, runpy, sys

def listed():
    with open(os.environ["MODULES_FILE"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(listed)
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""

NOT_FOR_A_RUN = (
    "pydantic",
    "pydantic_core",
    "pipeline.manifest.schema",
    "pipeline.ordering.plan",
    "pipeline.collect",
    "pipeline.review",
    "pipeline.serve",
    "pipeline.sandbox",
    "pipeline.ledger.postgres",
    "psycopg",
    "PIL",
    "jinja2",
    "watchfiles",
    "prometheus_client",
    # Results are downloaded with aiohttp; a run's API calls go through api/http1.py.
    "aiohttp",
    "aiofiles",
)


def test_a_run_and_its_re_run_load_nothing_the_other_commands_need(
    tmp_path: Path, photo_factory: Callable[..., Path], sandbox: Sandbox
) -> None:
    photo_factory(tmp_path / "inside", "room.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    for run in ("first", "again"):
        listing = tmp_path / f"modules-{run}.txt"
        done = subprocess.run(
            [sys.executable, "-c", _RUN_AND_LIST_MODULES, "run", str(manifest), *FAST, "--json"],
            env=aihd_env(sandbox, extra={"MODULES_FILE": str(listing)}),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        modules = listing.read_text().split()
        assert "pipeline.ordering.runner" in modules  # the listing is the run's
        loaded = [m for m in modules if any(m == n or m.startswith(f"{n}.") for n in NOT_FOR_A_RUN)]
        assert loaded == [], f"the {run} run loaded {loaded}"
