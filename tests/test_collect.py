"""``collect``: results land once, whole and decodable, inside the output folder."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image
from yarl import URL

from pipeline import api
from pipeline.api.v1 import ApiClient, Timeouts
from pipeline.collect.collector import CollectSummary, collect, poll_seconds
from pipeline.errors import AuthRefused
from pipeline.ledger import FoundPhoto, Ledger, PhotoOptions, PhotoRow, State, open_ledger
from pipeline.ordering.catalog import Catalog
from pipeline.retry import Backoff
from pipeline.sandbox import Faults, Sandbox
from pipeline.stopping import StopSwitch

PhotoFactory = Callable[..., Path]
NO_WAITS = Backoff(attempts=3, wait_initial=0.01, wait_max=0.02)
OPTIONS = PhotoOptions(api.SERVICE, "space-ie-indoor", ())
MAIN = Path(__file__).resolve().parents[1]


def _found(path: Path, folder: str) -> FoundPhoto:
    st = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return FoundPhoto(str(path), folder, st.st_size, st.st_mtime_ns, digest, OPTIONS)


def _submit(sandbox: Sandbox, ledger: Ledger, photos: Sequence[tuple[Path, str]]) -> None:
    """Upload and order each (photo, folder name) for real, recording it as the runner does."""

    async def scenario() -> None:
        async with ApiClient(sandbox.url, sandbox.api_key) as client:
            options = (await Catalog.fetch(client)).resolve("indoor", [])
            for path, folder in photos:
                (row,) = ledger.record_found([_found(path, folder)])
                order_id = await client.upload(path)
                ledger.mark_uploaded(row.id, order_id)
                ledger.mark_submitting(row.id)
                done = await client.submit(order_id, options.space.name, [])
                ledger.mark_submitted(row.id, done.image_id, done.eta)

    asyncio.run(scenario())


def _record_submitted(ledger: Ledger, path: Path, folder: str, order_id: str) -> PhotoRow:
    """A photo the ledger holds as submitted (eta unknown: poll at once), with no API involved."""
    (row,) = ledger.record_found([_found(path, folder)])
    ledger.mark_uploaded(row.id, order_id)
    ledger.mark_submitting(row.id)
    return ledger.mark_submitted(row.id, f"image-{order_id}", None)


def _collect(
    url: str,
    key: str,
    ledger: Ledger,
    output: Path,
    *,
    wait: bool = True,
    timeout: float | None = 30.0,
    stop: bool = False,
    eta_scale: float = 0.01,
) -> CollectSummary:
    async def scenario() -> CollectSummary:
        switch = StopSwitch()
        if stop:
            switch.set("interrupted")
        async with ApiClient(url, key, timeouts=Timeouts(read=5.0)) as client:
            return await collect(
                ledger,
                client,
                output,
                None,
                wait=wait,
                timeout=timeout,
                concurrency=3,
                backoff=NO_WAITS,
                stop=switch,
                min_poll_seconds=0.05,
                eta_scale=eta_scale,
            )

    return asyncio.run(scenario())


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _decodes(path: Path) -> bool:
    with Image.open(path) as image:
        image.load()
        return image.format == "JPEG"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = open_ledger(tmp_path / "photos.ledger.sqlite")
    yield opened
    opened.close()


def test_results_mirror_the_folders_and_a_second_collect_fetches_nothing(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    sandbox = make_sandbox(results_per_order=2)
    inside = tmp_path / "src" / "listings" / "oak" / "inside"
    photos = [
        (photo_factory(inside, "kitchen.jpg"), "listings/oak/inside"),
        (photo_factory(inside / "upstairs", "bedroom.jpeg"), "listings/oak/inside"),
        (photo_factory(tmp_path / "src" / "outside", "lawn.png", fmt="PNG"), "outside"),
    ]
    _submit(sandbox, ledger, photos)
    copy = inside / "kitchen-copy.jpg"
    copy.write_bytes(photos[0][0].read_bytes())
    (duplicate,) = ledger.record_found([_found(copy, "listings/oak/inside")])
    assert duplicate.state is State.DUPLICATE
    out = tmp_path / "enhanced"

    first = _collect(sandbox.url, sandbox.api_key, ledger, out)

    assert (first.completed, first.waiting, first.failed, first.exit_code) == (3, 0, 0, 0)
    assert (first.downloads, first.duplicates) == (6, 2)
    expected = [
        "listings/oak/inside/kitchen-copy.jpg",
        "listings/oak/inside/kitchen-copy_2.jpg",
        "listings/oak/inside/kitchen.jpg",
        "listings/oak/inside/kitchen_2.jpg",
        "listings/oak/inside/upstairs/bedroom.jpg",
        "listings/oak/inside/upstairs/bedroom_2.jpg",
        "outside/lawn.jpg",
        "outside/lawn_2.jpg",
    ]
    assert _files(out) == expected
    assert all(_decodes(out / name) for name in expected)
    rows = {Path(r.path).name: r for r in ledger.photos([State.COMPLETED])}
    assert len(rows) == 3
    assert rows["lawn.png"].output_paths == (
        str(out.resolve() / "outside/lawn.jpg"),
        str(out.resolve() / "outside/lawn_2.jpg"),
    )
    assert len(rows["lawn.png"].result_urls) == 2

    served = sandbox.stats().downloads
    second = _collect(sandbox.url, sandbox.api_key, ledger, out)
    assert (second.completed, second.polls, second.downloads, second.duplicates) == (0, 0, 0, 0)
    assert sandbox.stats().downloads == served
    assert _files(out) == expected


def test_orders_before_their_eta_are_asked_once_without_wait_and_not_polled_with_it(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    """Eta 30 s at full scale: a plain collect asks each order once (a result may be ready
    early) and leaves it waiting; --wait does not poll before the eta."""
    sandbox = make_sandbox(eta_seconds=30, time_scale=1.0)
    _submit(
        sandbox, ledger, [(photo_factory(tmp_path / "in", f"p{n}.jpg"), "in") for n in range(2)]
    )
    out = tmp_path / "out"

    now = _collect(sandbox.url, sandbox.api_key, ledger, out, wait=False, eta_scale=1.0)
    assert (now.waiting, now.polls, now.exit_code) == (2, 2, 0)
    assert "results not ready yet" in now.render()

    timed_out = _collect(sandbox.url, sandbox.api_key, ledger, out, timeout=0.3, eta_scale=1.0)
    assert (timed_out.stopped, timed_out.waiting, timed_out.exit_code) == ("timeout", 2, 4)
    assert timed_out.polls == 0

    stopped = _collect(sandbox.url, sandbox.api_key, ledger, out, stop=True)
    assert (stopped.stopped, stopped.exit_code, stopped.polls) == ("interrupted", 130, 0)
    assert {r.state for r in ledger.photos()} == {State.SUBMITTED}
    assert not out.exists() or _files(out) == []


_KILLABLE = """
import asyncio, sys
from pathlib import Path
from pipeline.api.v1 import ApiClient
from pipeline.collect.collector import collect
from pipeline.ledger import open_ledger
from pipeline.retry import Backoff
from pipeline.stopping import StopSwitch

async def main(url, key, ledger_path, output):
    ledger = open_ledger(Path(ledger_path))
    async with ApiClient(url, key) as client:
        await collect(ledger, client, Path(output), None, wait=True, timeout=60, concurrency=2,
                      backoff=Backoff(3, 0.01, 0.02), stop=StopSwitch(), min_poll_seconds=0.05,
                      eta_scale=0.01)

asyncio.run(main(*sys.argv[1:]))
"""


def _spawn_collect(url: str, key: str, ledger: Ledger, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, url, key, ledger.path, str(out)],
        cwd=MAIN,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not ready():
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, "collect never got that far"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.stderr is not None
    process.stderr.close()


def _parts(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if ".part-" in p.name]


@pytest.mark.slow
def test_a_collect_killed_midway_leaves_no_partial_file_and_the_next_one_finishes(
    make_sandbox: Callable[..., Sandbox],
    photo_factory: PhotoFactory,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    sandbox = make_sandbox()
    photos = [(photo_factory(tmp_path / "in", f"p{n}.jpg"), "in") for n in range(8)]
    _submit(sandbox, ledger, photos)
    sandbox.set_faults(Faults(latency=0.15))  # slow polls: the kill lands between photos
    out = tmp_path / "out"

    killed = _spawn_collect(sandbox.url, sandbox.api_key, ledger, out)
    _kill_when(killed, lambda: out.exists() and any(out.rglob("*.jpg")))
    assert ledger.counts()[State.SUBMITTED] > 0, "killed too late to prove anything"

    sandbox.set_faults(Faults())
    again = _collect(sandbox.url, sandbox.api_key, ledger, out)
    assert again.exit_code == 0
    assert ledger.counts()[State.COMPLETED] == 8
    assert _files(out) == [f"in/p{n}.jpg" for n in range(8)]
    assert all(_decodes(out / f"in/p{n}.jpg") for n in range(8))


class _OddApi:
    """A tiny stand-in API whose orders carry hostile or broken result links."""

    def __init__(self, results: dict[str, str]) -> None:
        self.results = results  # order id -> generated image src ("{url}" is filled in)
        self.slow = False
        self.url = ""
        self._ready = threading.Event()
        self._stopping: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), (90, 120, 160)).save(buffer, "JPEG")
        self.jpeg = buffer.getvalue()

    async def _order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        src = self.results[order_id].format(url=self.url)
        image = {"id": f"g-{order_id}", "sequence": 1, "src": src, "status": "regular_finished"}
        return web.json_response(
            {"id": order_id, "status": "finished", "generated_images": [image]}
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if "garbage" in request.path:
            return web.Response(body=b"<html>not an image</html>", content_type="image/jpeg")
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(self.jpeg)
        await response.prepare(request)
        step = max(1, len(self.jpeg) // 50)
        for start in range(0, len(self.jpeg), step):
            await response.write(self.jpeg[start : start + step])
            if self.slow:
                await asyncio.sleep(0.1)
        return response

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/order/{order_id}", self._order)
        app.router.add_get("/{tail:.*}", self._file)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._loop = asyncio.get_running_loop()
        self._stopping = self._loop.create_future()
        self._ready.set()
        await self._stopping
        await runner.cleanup()

    def __enter__(self) -> _OddApi:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None and self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set_result, None)
        self._thread.join(10)


def test_hostile_result_links_cannot_write_outside_output_or_name_the_file(
    photo_factory: PhotoFactory, tmp_path: Path, ledger: Ledger
) -> None:
    src = tmp_path / "src" / "escape"
    evil = _record_submitted(ledger, photo_factory(src, "room.jpg"), "../../escape", "o-evil")
    local = _record_submitted(ledger, photo_factory(src, "hall.jpg"), "../../escape", "o-file")
    broken = _record_submitted(ledger, photo_factory(src, "bath.jpg"), "../../escape", "o-bad")
    links = {
        "o-evil": "{url}/../../evil/..%2F..%2Fx.jpg?name=../../../pwned.jpg",
        "o-file": "file:///etc/passwd",
        "o-bad": "{url}/garbage/bath.jpg",
    }
    out = tmp_path / "out"
    before = set(_files(tmp_path))

    with _OddApi(links) as server:
        summary = _collect(server.url, "k", ledger, out)

    assert (summary.completed, summary.failed, summary.exit_code) == (1, 2, 1)
    assert set(_files(tmp_path)) - before == {"out/escape/room.jpg"}
    assert _decodes(out / "escape/room.jpg")
    assert ledger.get(evil.id).output_paths == (str(out.resolve() / "escape/room.jpg"),)
    hall, bath = ledger.get(local.id), ledger.get(broken.id)
    assert (hall.state, hall.retryable, hall.error) == (State.FAILED, False, "aihd_bad_result_url")
    assert bath.state is State.FAILED and "does not decode" in str(bath.error)
    assert "bath.jpg" in summary.render() and "does not decode" in summary.to_json()


@pytest.mark.slow
def test_a_download_killed_midway_leaves_only_a_temporary_that_the_next_collect_removes(
    photo_factory: PhotoFactory, tmp_path: Path, ledger: Ledger
) -> None:
    photo = photo_factory(tmp_path / "src" / "in", "den.jpg")
    row = _record_submitted(ledger, photo, "in", "o-1")
    out = tmp_path / "out"
    with _OddApi({"o-1": "{url}/results/x.jpg"}) as server:
        server.slow = True
        killed = _spawn_collect(server.url, "k", ledger, out)
        _kill_when(killed, lambda: bool(out.exists() and _parts(out)))
        assert _files(out)[0].startswith("in/.den")  # the partial file is a dot temporary
        assert ledger.get(row.id).state is State.SUBMITTED

        server.slow = False
        summary = _collect(server.url, "k", ledger, out)

    assert (summary.completed, summary.downloads) == (1, 1)
    assert _parts(out) == [] and _files(out) == ["in/den.jpg"]
    assert ledger.get(row.id).state is State.COMPLETED
    assert os.path.getsize(out / "in/den.jpg") == len(server.jpeg)


def test_a_refused_key_stops_collect_with_the_auth_error(
    sandbox: Sandbox, photo_factory: PhotoFactory, tmp_path: Path, ledger: Ledger
) -> None:
    _submit(sandbox, ledger, [(photo_factory(tmp_path / "in", "p.jpg"), "in")])
    with pytest.raises(AuthRefused) as refused:
        _collect(sandbox.url, "wrong-key", ledger, tmp_path / "out")
    assert refused.value.exit_code == 3 and "wrong-key" not in str(refused.value)
    assert {r.state for r in ledger.photos()} == {State.SUBMITTED}


def _deep_folder(root: Path, length: int, name: str) -> Path:
    """A folder under ``root`` such that ``folder / name`` is ``length`` characters long."""
    folder = root
    while len(str(folder)) + 1 + len(name) < length:
        room = length - len(str(folder)) - 1 - len(name) - 1
        folder = folder / ("d" * min(250, max(1, room)))
    assert len(str(folder / name)) == length
    folder.mkdir(parents=True)
    return folder


@pytest.mark.slow  # a run and two collects waiting out a 0.5 s eta
def test_results_of_photos_under_paths_too_long_for_the_output_are_shortened_and_kept(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """One photo under a 4,067-character path and one whose name is 250 bytes of "é": their
    results get stable, unique shortened names (recorded in the ledger), and the 6 ordinary
    photos are collected beside them. Before: ENAMETOOLONG, and collect died with 0 of 8."""
    from tests.cli_helpers import aihd, ledger_rows, write_manifest

    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)  # collect polls after the eta
    inside = tmp_path / "inside"
    for n in range(6):
        photo_factory(inside, f"p{n}.jpg")
    deep = photo_factory(_deep_folder(inside, 4067, "deep.jpg"), "deep.jpg")
    accented = photo_factory(inside, "é" * 125 + ".jpg")  # 254 bytes: the disk takes it
    manifest = write_manifest(
        tmp_path, {"inside": ("indoor", [])}, folder_keys={"inside": {"recursive": "true"}}
    )
    done = aihd(["run", str(manifest), "--no-progress", "--collect", "--json"], sandbox)
    assert done.returncode == 0, done.stderr
    rows = {Path(r.path): r for r in ledger_rows(manifest)}
    assert len(rows) == 8 and {r.state for r in rows.values()} == {State.COMPLETED}
    written = {Path(p) for r in rows.values() for p in r.output_paths}
    assert len(written) == 8 and all(p.is_file() for p in written)
    output = tmp_path / "enhanced"
    for p in written:
        assert p.is_relative_to(output / "inside")
        assert len(os.fsencode(p.name)) <= 255 and len(os.fsencode(str(p))) <= 4095
        Image.open(p).verify()
    (deep_result,) = rows[deep].output_paths
    assert Path(deep_result).name == "deep.jpg" and "~" in Path(deep_result).parent.name
    (accented_result,) = rows[accented].output_paths
    assert Path(accented_result).name.startswith("é" * 90) and "~" in accented_result
    ordinary = sorted(Path(p).name for r in rows.values() for p in r.output_paths if "~" not in p)
    assert ordinary == [f"p{n}.jpg" for n in range(6)]
    again = aihd(["collect", str(manifest), "--no-progress", "--json"], sandbox)
    assert again.returncode == 0 and '"downloads": 0' in again.stdout, again.stderr
    assert sorted(sandbox.stats().charges.values()) == [1] * 8


def test_an_output_folder_too_long_for_any_result_fails_each_photo_with_the_reason(
    make_sandbox: Callable[..., Sandbox], photo_factory: PhotoFactory, tmp_path: Path
) -> None:
    """No shortening can help: each photo fails with a reason naming the fix, nothing else."""
    from tests.cli_helpers import aihd, ledger_rows, write_manifest

    sandbox = make_sandbox(eta_seconds=1, time_scale=0.5)
    for n in range(2):
        photo_factory(tmp_path / "inside", f"p{n}.jpg")
    manifest = write_manifest(tmp_path, {"inside": ("indoor", [])})
    assert aihd(["run", str(manifest), "--no-progress"], sandbox).returncode == 0
    output = _deep_folder(tmp_path / "out", 3950, "x")
    done = aihd(
        ["collect", str(manifest), "--no-progress", "--wait", "--output", str(output)], sandbox
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("choose a shorter output folder") == 2
    assert {r.state for r in ledger_rows(manifest)} == {State.FAILED}
    assert all(r.charged for r in ledger_rows(manifest))  # paid: retried as results, never ordered
    assert sorted(sandbox.stats().charges.values()) == [1] * 2


def test_the_api_is_polled_every_5_s_and_a_local_emulator_every_fifth_of_a_second() -> None:
    """The API asks for 5 s between polls; the emulator on loopback answers at once."""
    assert poll_seconds(URL("https://api.aihomedesign.com/v1")) == 5.0
    assert poll_seconds(URL("http://10.0.0.7:8080")) == 5.0
    for local in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"):
        assert poll_seconds(URL(local)) == 0.2
