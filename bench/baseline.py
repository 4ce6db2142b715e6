"""The plain way: upload then submit each photo, nothing kept but the answers.

What a user might write first, with aiohttp and one keep-alive session: no ledger, no retries,
no order window. `sequential` (one photo after another) is the baseline `python -m bench
baseline` times beside `aihd run`; `concurrent` (N photos in flight) is the open-pipe
benchmark's yardstick for what the sandbox itself allows. Standalone:
  AIHD_BASE_URL=... AIHD_API_KEY=... python -m bench.baseline FOLDER [--concurrency N]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

SERVICE = "service-image-enhancement"


async def _indoor(session: aiohttp.ClientSession, base_url: str) -> str:
    params = {"service_name": SERVICE}
    async with session.get(f"{base_url}/v1/catalog/spaces", params=params) as answer:
        answer.raise_for_status()
        spaces = (await answer.json())["data"]
    return str(next(s["name"] for s in spaces if s["title"].lower() == "indoor"))


async def _order(session: aiohttp.ClientSession, base_url: str, space: str, photo: Path) -> float:
    """Upload one photo and submit its order; the time the order's answer came."""
    form = aiohttp.FormData()
    form.add_field("service_name", SERVICE)
    # A plain script reads the file on the loop: that is what is being compared.
    form.add_field("image", photo.read_bytes(), filename=photo.name)  # noqa: ASYNC240
    async with session.post(f"{base_url}/v1/order/image", data=form) as answer:
        answer.raise_for_status()
        order_id = (await answer.json())["order_id"]
    body = {"order_id": order_id, "space_name": space, "selected_widgets": []}
    async with session.post(f"{base_url}/v1/order", json=body) as answer:
        answer.raise_for_status()
        await answer.read()
    return time.perf_counter()


async def sequential(base_url: str, key: str, photos: list[Path]) -> float:
    """Upload and submit each photo in turn as the indoor space; seconds taken."""
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers={"x-api-key": key}) as session:
        space = await _indoor(session, base_url)
        for photo in photos:
            await _order(session, base_url, space, photo)
    return time.perf_counter() - started


async def concurrent(base_url: str, key: str, photos: list[Path], concurrency: int) -> list[float]:
    """The same calls with ``concurrency`` photos in flight; each order's answer time."""
    pending = list(reversed(photos))
    answered: list[float] = []
    async with aiohttp.ClientSession(headers={"x-api-key": key}) as session:
        space = await _indoor(session, base_url)

        async def worker() -> None:
            while pending:
                answered.append(await _order(session, base_url, space, pending.pop()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(answered)


def main(argv: list[str]) -> None:
    concurrency = int(argv[argv.index("--concurrency") + 1]) if "--concurrency" in argv else 1
    photos = sorted(Path(argv[0]).glob("*.jpg"))
    url, key = os.environ["AIHD_BASE_URL"], os.environ["AIHD_API_KEY"]
    if concurrency == 1:
        print(f"{len(photos)} photos in {asyncio.run(sequential(url, key, photos)):.3f} s")
        return
    times = asyncio.run(concurrent(url, key, photos, concurrency))
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"{len(photos)} photos, {concurrency} in flight: {rate:.1f} photos/s")


if __name__ == "__main__":
    main(sys.argv[1:])
