"""Fixtures for the whole suite: a local emulator of the API, and small real photos."""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings as hypothesis_settings
from PIL import Image

from pipeline.sandbox import Sandbox, SandboxConfig, SandboxThread
from tests.hostile_server import HostileControl, Hostility, hostile_app
from tests.pg_server import PgServer, find_bin
from tests.pg_shared import shared_server, stop_left_over
from tests.serve_helpers import kill_leftovers

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Property tests: a developer's run tries a few examples of each, CI many (.ci/run sets
# CI=true); HYPOTHESIS_PROFILE=ci asks for CI's number on any run.
hypothesis_settings.register_profile("dev", max_examples=50)
hypothesis_settings.register_profile("ci", max_examples=300)
_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _CI else "dev"))

# Fast defaults: a window too wide to meet by accident, and orders that finish in ~0.3 s
# (eta 1 s x 0.3). The eta the sandbox reports is what `collect --wait` waits out before its
# first poll: 1 s, not the API's 30 s. A test that passes time_scale alone says eta_seconds too.
FAST_SANDBOX: dict[str, Any] = {
    "orders_per_window": 1000,
    "window_seconds": 600,
    "eta_seconds": 1,
    "time_scale": 0.3,
}


# How long each test took (setup, call and teardown; tests of 0.5 s or more), as measured by
# `make durations`: the order `make test` hands tests out in. Only the order comes from it.
DURATIONS = Path(__file__).with_name("durations.json")
SLOW_GUESS = 10.0  # seconds, for a test marked slow that the file does not know yet
_measured: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"write each test's seconds to {DURATIONS.name} (the order tests are handed out in)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: `make test` hands tests out one at a time to its workers, and
    a long test started late keeps one worker busy after the others have finished. Marked slow
    and not measured yet: among the long ones; unmarked and not measured: last. A group's
    tests (``_group``) by module, so that module fixtures are set up once. Sorted alike in
    every worker: pytest-xdist wants the same order from each."""
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}

    def seconds(item: pytest.Item) -> float:
        guess = SLOW_GUESS if item.get_closest_marker("slow") else 0.0
        return float(known.get(item.nodeid, guess))

    groups: dict[str, float] = {}
    for item in items:
        if (group := _group(item.nodeid)) is not None:
            groups[group] = groups.get(group, 0.0) + seconds(item)

    def order(item: pytest.Item) -> tuple[float, str]:
        group = _group(item.nodeid)
        if group is None:
            return (-seconds(item), "")
        return (-groups[group], item.nodeid)

    items.sort(key=order)


# Modules whose tests share a module-scoped fixture: each runs on one worker, one test after
# another (a worker that comes back to a module after another's test sets its fixture up
# again: test_v3_tools' night of every tool was made ~70 times).
SHARED_FIXTURE_MODULES = frozenset({"tests/test_v3_tools.py", "tests/test_deferred_ca.py"})


def _group(nodeid: str) -> str | None:
    """The group a test runs in, on one worker, one test after another: the browser tests
    (tests/test_*_browser.py), each module on one Chromium (the browser fixture below); and each
    module of SHARED_FIXTURE_MODULES."""
    module = nodeid.split("::", 1)[0]
    if module.endswith("_browser.py"):
        return "browser"
    return module if module in SHARED_FIXTURE_MODULES else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with the groups of ``_group``: pytest-xdist's own xdist_group marker
    names a group by a suffix of the test's id, which pytest 9 no longer lets it write."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Grouped(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid) or nodeid

    return Grouped(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's seconds, for --record-durations (in xdist's controller: every worker's)."""
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.getoption("record_durations") or hasattr(config, "workerinput"):
        return
    if exitstatus != 0:
        return  # a failed test's time says little of how long it takes
    # Merged into what the file knows: a run of some tests leaves the others' times.
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    known.update({nodeid: round(seconds, 1) for nodeid, seconds in _measured.items()})
    kept = {nodeid: known[nodeid] for nodeid in sorted(known) if known[nodeid] >= 0.5}
    DURATIONS.write_text(json.dumps(kept, indent=0) + "\n")


@pytest.fixture(autouse=True)
def _no_leftover_service() -> Iterator[None]:
    """A served process (tests/serve_helpers.py) a failed test left running is killed."""
    yield
    kill_leftovers()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start local emulators with the given SandboxConfig fields; each stops at teardown."""
    with ExitStack() as running:

        def start(**config: Any) -> Sandbox:
            settings = {**FAST_SANDBOX, **config}
            settings.setdefault("api_key", secrets.token_urlsafe(24))
            return running.enter_context(SandboxThread(SandboxConfig(**settings)))

        yield start


@pytest.fixture
def make_hostile() -> Iterator[Callable[..., tuple[Sandbox, HostileControl]]]:
    """Start hostile emulators: start(hostility, **SandboxConfig fields) -> (sandbox, control)."""
    with ExitStack() as running:

        def start(
            hostility: Hostility | None = None, **config: Any
        ) -> tuple[Sandbox, HostileControl]:
            settings = {**FAST_SANDBOX, **config}
            settings.setdefault("api_key", secrets.token_urlsafe(24))
            control = HostileControl(hostility or Hostility())
            thread = SandboxThread(SandboxConfig(**settings), app_factory=hostile_app(control))
            return running.enter_context(thread), control

        yield start


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A local emulator with a fresh key, a wide order window and fast orders."""
    return make_sandbox()


@pytest.fixture
def photo_factory() -> Callable[..., Path]:
    """make(dir, name, size=(64, 48), color=None, fmt="JPEG") -> a small image, unique bytes."""
    serial = itertools.count()

    def make(
        folder: Path,
        name: str,
        size: tuple[int, int] = (64, 48),
        color: tuple[int, int, int] | None = None,
        fmt: str = "JPEG",
    ) -> Path:
        n = next(serial)
        fill = color if color is not None else (40 + n * 7 % 180, 60 + n * 13 % 160, 90)
        image = Image.new("RGB", size, fill)
        # A serial-coded pixel row keeps every photo's sha256 distinct, even with one color.
        for x in range(min(size[0], 32)):
            bit = (n >> x) & 1
            image.putpixel((x, 0), (255, 255, 255) if bit else (0, 0, 0))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        image.save(path, fmt)
        return path

    return make


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL server for the session, in a temporary folder removed afterwards;
    the xdist workers of a run share one (tests/pg_shared.py)."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL found (initdb/pg_ctl): apt-get install postgresql")
    with ExitStack() as running:
        try:
            if os.environ.get("PYTEST_XDIST_WORKER"):
                run_folder = tmp_path_factory.getbasetemp().parent  # the workers' common one
                server = running.enter_context(shared_server(run_folder, bin_dir))
            else:
                server = PgServer(bin_dir)
                running.callback(server.stop)
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        yield server


def pytest_unconfigure(config: pytest.Config) -> None:
    """In xdist's controller: stop a shared PostgreSQL server a crashed worker left running."""
    if hasattr(config, "workerinput") or getattr(config.option, "dist", "no") == "no":
        return
    factory = getattr(config, "_tmp_path_factory", None)  # private; xdist itself reads it
    if factory is not None:
        stop_left_over(factory.getbasetemp())


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server: its URL."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh ledger is: a SQLite file, or an empty database on the session's
    PostgreSQL server. A test that takes it runs once on each store: one contract, two stores."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "account.ledger.sqlite")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a module of browser tests (they run one after another on one worker:
    ``_group``); each test's pages are in browser contexts of their own."""
    from tests.browser_helpers import chromium_browser  # Playwright only where it is used

    with chromium_browser() as running:
        yield running
