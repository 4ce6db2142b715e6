"""The review desk as a command starts it: the account's ledger, the re-order of ``aihd
reorder`` (ordering/, which review may not import), and ``aihd review --serve`` until a signal.

``aihd serve`` builds its desk the same way (``desk_settings``) and mounts it on its own app
with ``pipeline.review.desk.mount_review_desk``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from pipeline.ledger import open_ledger
from pipeline.manifest.loader import Manifest
from pipeline.ordering.reorder import plan_reorder
from pipeline.review.desk import DeskSettings, run_review_desk
from pipeline.stopping import StopSwitch

__all__ = ["desk_settings", "serve_desk"]


def desk_settings(
    manifests: Sequence[Manifest],
    ledger: Path | str,
    *,
    listen_host: str = "127.0.0.1",
    public_hosts: Sequence[str] = (),
    reordered_by: str = "",
    on_reordered: Callable[[Sequence[str]], None] = lambda paths: None,
) -> DeskSettings:
    """The desk of ``manifests`` on the account's ``ledger`` (a path or postgresql:// URL)."""
    return DeskSettings(
        manifests=tuple(manifests),
        open_ledger=partial(open_ledger, ledger),
        plan_reorder=plan_reorder,
        listen_host=listen_host,
        public_hosts=tuple(public_hosts),
        reordered_by=reordered_by,
        on_reordered=on_reordered,
    )


async def serve_desk(
    settings: DeskSettings,
    listen: tuple[str, int],
    stop: StopSwitch,
    on_listening: Callable[[str, str], None],
) -> None:
    """``aihd review MANIFEST --serve``: the desk alone until ``stop``."""
    await run_review_desk(settings, listen, stop.event, on_listening)
