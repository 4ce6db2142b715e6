"""What tests of the hostile local emulator share (its fixture is ``make_hostile``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from pipeline.sandbox import Sandbox
from tests.hostile_server import INTERNAL_PATH, HostileControl

MakeHostile: TypeAlias = Callable[..., tuple[Sandbox, HostileControl]]


def internal_hits(sandbox: Sandbox) -> int:
    """Requests the internal "service" behind the hostile result URLs has answered."""
    return sandbox.stats().requests.get(f"GET {INTERNAL_PATH}", 0)
