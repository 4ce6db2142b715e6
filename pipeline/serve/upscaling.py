"""Upscales (v1 only, docs/api/AIHOMEDESIGN_API.md 2.7): asked for once, collected by webhook.

A completed photo wished upscaled (``upscale: true`` on its folder, or ``aihd upscale``) gets,
per generated image, an intent in the ledger, then one POST (ledger/serving.py: a generated
image's intent exists once, so nothing sends it twice; a lost answer is never sent again). The
upscaled photo exists only as a webhook: ``{generated_image_id, upscaled_image_src, user_id}``.
The payload is not trusted. The order is read again with the account's key; the link is taken
from that answer when it carries one (a reading the notes leave open), else the payload's link
only if it points where the API keeps this very order's results (same origin as the result
the API names) and the payload's user is the order's; anything else is never fetched. The file
lands beside the enhanced one as ``<name>-upscaled.<ext>``, written as collect writes.
"""

from __future__ import annotations

import asyncio
import filecmp
import logging
import secrets
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from yarl import URL

from pipeline.api.factory import AnyVersion
from pipeline.api.records import is_v3_service
from pipeline.api.v1 import ResultSource
from pipeline.collect.results import PART_MARK, commit_files, decoded_extension, unlink_all
from pipeline.errors import AuthRefused, OutcomeUnknown, PipelineError, RequestRejected
from pipeline.ledger import Ledger, PhotoRow, State, UpscaleRow
from pipeline.retry import Backoff, retrying
from pipeline.serve.hooks import Hint
from pipeline.serve.roots import by_root, nearest

__all__ = ["Upscaler"]

log = logging.getLogger("aihd")
_OPEN = ("requesting", "requested")


class Upscaler:
    """Sends the upscales wished for, and places the upscaled photos webhooks announce."""

    def __init__(
        self,
        ledger: Ledger,
        client: AnyVersion,
        *,
        upscale_roots: Sequence[str],
        scope: Sequence[str],
        backoff: Backoff,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._roots: dict[str, bool] = {}
        self._served: dict[str, bool] = {}
        self.use(upscale_roots, scope)
        self._backoff = backoff
        self._posting: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.due = False  # a photo was just wished upscaled

    def use(self, upscale_roots: Sequence[str], scope: Sequence[str]) -> None:
        """The manifests' folders as they are now (SIGHUP)."""
        self._roots = by_root((root, True) for root in upscale_roots)
        self._served = by_root((folder, True) for folder in scope)

    # -- asking -------------------------------------------------------------------------------

    def wish(self, row: PhotoRow) -> None:
        """A photo just completed: wished upscaled if its folder says so."""
        if nearest(row.path, self._roots):
            self._ledger.wish_upscales([row.id], "upscale: true")
            self.due = True  # asked for at the service's next turn, not its next pass

    def wish_completed(self) -> None:
        """Every completed photo of the upscale folders (collected while no one served)."""
        if self._roots:
            rows = self._ledger.photos([State.COMPLETED], scope=list(self._roots))
            self._ledger.wish_upscales([row.id for row in rows], "upscale: true")

    async def request(self) -> None:
        """One pass: each wished photo's upscales, an intent before each POST."""
        self.due = False
        # The wishes are few: the ledger lists them all, the served folders are looked up here.
        for photo_id in self._ledger.upscale_work():
            row = self._ledger.get(photo_id)
            order_id = row.order_id
            if not nearest(row.path, self._served):
                continue  # another manifest's photo: its own service places it
            if is_v3_service(row.service) or order_id is None:
                continue  # v1 only: `aihd upscale` and the manifest refuse others
            details = await retrying(partial(self._client.v1.order, order_id), self._backoff)
            generated = [image.id for image in details.generated_images if image.id]
            for generated_id in self._ledger.upscale_intents(photo_id, generated):
                # Shielded: a stop waits for a POST already sent (wait_posts), so its answer
                # is recorded rather than left unknown.
                posting = asyncio.create_task(self._post(generated_id))
                self._posting.add(posting)
                posting.add_done_callback(self._posting.discard)
                await asyncio.shield(posting)

    async def _post(self, generated_id: str) -> None:
        try:
            await self._client.v1.upscale(generated_id)
        except OutcomeUnknown as exc:
            # It may have been sent: left requesting, never sent again; its webhook may come.
            log.warning("upscale of %s: answer lost (%s); not sent again", generated_id, exc)
        except AuthRefused:
            self._ledger.upscale_answered(generated_id, "the API refused the key")
            raise
        except PipelineError as exc:  # a refusal, a 429, no connection: nothing was charged
            self._ledger.upscale_answered(generated_id, str(exc))
            log.warning("upscale of %s refused: %s; tried again later", generated_id, exc)
        else:
            self._ledger.upscale_answered(generated_id, None)
            self.sent += 1

    async def wait_posts(self, within_seconds: float) -> None:
        """At a stop: let POSTs already sent be answered and recorded."""
        if self._posting:
            await asyncio.wait(set(self._posting), timeout=within_seconds)

    # -- receiving ----------------------------------------------------------------------------

    def known(self, hint: Hint) -> UpscaleRow | None:
        return self._ledger.upscale(hint.generated_image_id)

    async def delivered(self, upscale: UpscaleRow, hint: Hint) -> bool:
        """Place the upscaled photo a webhook announced; False if another machine holds the
        photo now (the hint is looked at again shortly)."""
        if upscale.state not in _OPEN:
            return True  # done already: a duplicate or a replay
        if not self._ledger.claim(upscale.photo_id):
            return False
        try:
            current = self._ledger.upscale(hint.generated_image_id)
            if current is None or current.state not in _OPEN:
                return True
            row = self._ledger.get(upscale.photo_id)
            await self._place(row, hint)
        finally:
            self._ledger.release_claim(upscale.photo_id)
        return True

    async def _place(self, row: PhotoRow, hint: Hint) -> None:
        generated_id = hint.generated_image_id
        source = await retrying(
            lambda: self._client.v1.result_source(str(row.order_id), generated_id), self._backoff
        )
        link = _trusted_link(source, hint)
        if source is None or link is None:
            log.warning(
                "upscale webhook for %s not followed: its link or user is not this order's "
                "as the API shows it",
                row.path,
            )
            return
        enhanced = Path(row.output_paths[min(len(row.output_paths), source.sequence) - 1])
        directory = enhanced.parent
        stem = enhanced.stem
        temp = directory / f".{stem[:120]}-upscaled{PART_MARK}{secrets.token_hex(6)}"
        try:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            await self._client.v1.download(link, temp)
            ext = await asyncio.to_thread(decoded_extension, temp)
            final = await asyncio.to_thread(_free_name, directory, f"{stem}-upscaled", ext, temp)
            await asyncio.to_thread(commit_files, [(temp, final)], directory)
        except RequestRejected as exc:
            self._ledger.finish_upscale(generated_id, None, exc.reason)
            return
        except PipelineError as exc:
            self._ledger.finish_upscale(generated_id, None, str(exc))
            return
        finally:
            unlink_all([temp])
        self._ledger.finish_upscale(generated_id, str(final))
        log.info("upscaled: %s", final)


def _trusted_link(source: ResultSource | None, hint: Hint) -> str | None:
    """The link to fetch: the API's own, else the payload's when it points where the API
    keeps this order's results and names the order's user; None: fetch nothing."""
    if source is None:
        return None
    if source.upscaled_src:
        return source.upscaled_src
    if hint.user_id and source.user_id and hint.user_id != source.user_id:
        return None
    try:
        given, known = URL(hint.upscaled_src), URL(source.src)
    except ValueError:
        return None
    if not known.is_absolute() or not given.is_absolute() or given.origin() != known.origin():
        return None
    return hint.upscaled_src


def _free_name(directory: Path, base: str, ext: str, content: Path) -> Path:
    """``base.ext``, or ``base-2.ext``...: never over a file aihd did not write (one with the
    very bytes about to be written is ours from a stop before the ledger heard of it)."""
    for n in range(1, 100):
        final = directory / f"{base}{'' if n == 1 else f'-{n}'}.{ext}"
        if not final.exists() and not final.is_symlink():
            return final
        if final.is_file() and not final.is_symlink() and filecmp.cmp(final, content, False):
            return final
    raise PipelineError(f"no free name for {base}.{ext} in {directory}: tidy the folder")
