"""A local emulator of the AI HomeDesign v1 and v3 APIs for the demo, tests and benchmarks.

It is never the real service: orders are charged only in its own stats, and its results are a
local Pillow enhancement served from its own URLs.
"""

from __future__ import annotations

from .server import Sandbox, SandboxThread, run_forever, serve
from .state import Faults, SandboxConfig, SandboxStats
from .v3_readings import V3Readings
from .webhooks import Webhooks

__all__ = [
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxStats",
    "SandboxThread",
    "V3Readings",
    "Webhooks",
    "run_forever",
    "serve",
]
