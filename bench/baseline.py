"""The plain way: one photo after another, upload then submit, nothing kept but the answers.

This is what a user might write first; `python -m bench baseline` times it beside `aihd run`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp

SERVICE = "service-image-enhancement"


async def sequential(base_url: str, key: str, photos: list[Path]) -> float:
    headers = {"x-api-key": key}
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(
            f"{base_url}/v1/catalog/spaces", params={"service_name": SERVICE}
        ) as answer:
            space = (await answer.json())["data"][0]["name"]
        for photo in photos:
            form = aiohttp.FormData()
            form.add_field("service_name", SERVICE)
            form.add_field("image", photo.read_bytes(), filename=photo.name)
            async with session.post(f"{base_url}/v1/order/image", data=form) as answer:
                order_id = (await answer.json())["order_id"]
            body = {"order_id": order_id, "space_name": space, "selected_widgets": []}
            async with session.post(f"{base_url}/v1/order", json=body) as answer:
                answer.raise_for_status()
    return time.perf_counter() - started


if __name__ == "__main__":
    url, api_key, folder = sys.argv[1:4]
    seconds = asyncio.run(sequential(url, api_key, sorted(Path(folder).glob("*.jpg"))))
    print(f"{seconds:.3f}")
