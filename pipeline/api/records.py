"""What a client answers with, whichever API version it speaks, and what a photo is ordered
with (``OrderSpec``). Plain records: the runner, plan and collect see only these."""

from __future__ import annotations

__all__ = [
    "V3_PREFIX",
    "GeneratedImage",
    "OrderDetails",
    "OrderSpec",
    "SubmittedOrder",
    "is_v3_service",
]

from dataclasses import dataclass

from pipeline.api.v1_shapes import STATUS_IDLE, SelectedWidget

V3_PREFIX = "v3:"  # the ledger's ``service`` of a v3 photo: "v3:<tool slug>"


@dataclass(frozen=True, slots=True)
class SubmittedOrder:
    """The answer to the call that spends: v1's order POST, v3's process POST.

    ``image_id`` is v1's generated image id, or v3's process id (the ledger's image_id).
    """

    order_id: str
    image_id: str
    eta: int | None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One result. ``process_id``: v3's process that made it (its link may expire: re-read)."""

    id: str
    src: str
    status: str
    process_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """An order as the API shows it. ``processes``: v3's process ids on the order (v1: none).

    ``status`` is v1's order status; for v3 it is the photo's process status when the order
    has one (``pending``/``processing``/``done``/``failed``), else the order's own.
    """

    order_id: str
    status: str
    generated_images: tuple[GeneratedImage, ...]
    processes: tuple[str, ...] = ()

    @property
    def never_submitted(self) -> bool:
        """True only when the API shows the order untouched: safe to submit it."""
        return self.status == STATUS_IDLE and not self.generated_images and not self.processes


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What one photo is ordered with.

    ``service`` is the ledger's service column: v1's service name, or ``v3:<tool slug>``.
    v1 reads ``space_name`` and ``selected_widgets``; v3 reads ``tool``, ``slot`` (the asset
    map's key), ``widgets`` ((widget slug, item slugs) pairs) and ``project`` (the address of
    the listing's project).
    """

    service: str
    space_name: str = ""
    selected_widgets: tuple[SelectedWidget, ...] = ()
    tool: str = ""
    slot: str = ""
    widgets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    project: str = ""

    @property
    def is_v3(self) -> bool:
        return self.service.startswith(V3_PREFIX)


def is_v3_service(service: str) -> bool:
    """Was a ledger row with this ``service`` ordered through v3?"""
    return service.startswith(V3_PREFIX)
