"""A clock for "how long ago" across processes that a wall-clock jump cannot fool.

An order's intent is stamped with ``CLOCK_BOOTTIME`` (seconds since boot, counting suspend) and
the boot's id. A later process on the same boot measures the intent's age on that clock; after
a reboot (another boot id) or where the clock is missing, the age is unknown and callers must
assume the worst (e.g. wait the full settle time). The wall clock is never used for this: set
forward, it would make a fresh intent look settled and let its order be posted again.
"""

from __future__ import annotations

__all__ = ["Stamp", "boot_id", "boot_seconds", "new_owner", "owner_alive"]

import os
import socket
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@lru_cache(maxsize=1)
def boot_id() -> str:
    """This boot's id ('' where the system does not tell: ages are then always unknown)."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def boot_seconds() -> float:
    """Seconds since this boot (CLOCK_BOOTTIME where there is one, else CLOCK_MONOTONIC)."""
    return time.clock_gettime(_CLOCK)


@dataclass(frozen=True, slots=True)
class Stamp:
    """A moment as this boot's clock saw it."""

    boot: str
    seconds: float

    @classmethod
    def now(cls) -> Stamp:
        return cls(boot_id(), boot_seconds())

    def age(self) -> float | None:
        """Seconds since this stamp, or None when it was taken on another (or unknown) boot."""
        if not self.boot or self.boot != boot_id():
            return None
        return max(0.0, boot_seconds() - self.seconds)


def new_owner() -> str:
    """A run's name in the ledger's claims: host, boot, pid and a random part."""
    return f"{socket.gethostname()}|{boot_id()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str) -> bool:
    """False only when the owner is a process of this host and boot that no longer exists;
    a run elsewhere is trusted until its lease lapses."""
    parts = owner.split("|")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] != boot_id():
        return True
    if not parts[1]:
        return True  # no boot id: a pid could belong to another boot
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
