"""Fencing a photo's writes with its claim: what both stores say when this run's claim is lost.

A run may change a photo (upload it, record an intent, settle it) only while it holds a live
claim on it, and with a fencing token (``claim_fence``) that each new claim increments: a run
paused past its lease, whose photo another run took over meanwhile, writes nothing and spends
nothing when it wakes (``ClaimLost``).
"""

from __future__ import annotations

__all__ = ["claim_lost_message"]


def claim_lost_message(
    path: str, ledger: str, photo_id: int, owner: str, holder: str | None, live: bool
) -> str:
    """Why this run may no longer change the photo; nothing was written or sent."""
    if holder is not None and holder != owner:
        why = f"the run {holder} holds it now (this run's claim lapsed: paused past its lease?)"
    elif holder == owner and live:
        why = "it was claimed again since (a newer claim holds it)"
    else:
        why = "its claim lapsed (was this run paused past its lease?)"
    return (
        f"leaving {path} alone: {why}; nothing was sent for it (ledger {ledger}, photo {photo_id})"
    )
