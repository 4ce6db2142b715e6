"""A 50 MB photo is streamed from disk, never read whole into memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_PROBE = textwrap.dedent(
    """
    import asyncio, resource, secrets, sys
    from pathlib import Path
    from pipeline.api.v1 import ApiClient
    from pipeline.sandbox import SandboxConfig, SandboxThread

    big, small = Path(sys.argv[1]), Path(sys.argv[2])

    def peak_kib() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def upload(url: str, key: str, photo: Path) -> str:
        async with ApiClient(url, key) as client:
            return await client.upload(photo)

    with SandboxThread(SandboxConfig(api_key=secrets.token_urlsafe(16))) as sandbox:
        asyncio.run(upload(sandbox.url, sandbox.api_key, small))  # warm every code path up
        before = peak_kib()
        asyncio.run(upload(sandbox.url, sandbox.api_key, big))
        after = peak_kib()
        assert sandbox.stats().uploads == 2
    print(after - before)
    """
)


@pytest.mark.slow
def test_uploading_a_50_mb_photo_raises_peak_memory_by_under_10_mb(tmp_path: Path) -> None:
    """Measured in a fresh process (peak RSS only grows), with the emulator in that process too."""
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        chunk = bytes(range(256)) * 4096  # 1 MiB, written 50 times: the test holds 1 MiB
        for _ in range(50):
            f.write(chunk)
        f.truncate(50 * 1024 * 1024)
    small = tmp_path / "small.jpg"
    small.write_bytes(b"\xff\xd8\xff\xe0" + bytes(2048) + b"\xff\xd9")
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(big), str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    growth_kib = int(probe.stdout.strip())
    assert growth_kib < 10 * 1024, f"peak RSS grew by {growth_kib / 1024:.1f} MiB"
