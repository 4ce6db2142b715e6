"""The PostgreSQL ledger's order changes: the intent under the account's window, answers,
failures, `aihd reorder`, and the import of a SQLite ledger (see postgres.py for the whole)."""

from __future__ import annotations

__all__ = ["PostgresOrders"]

import json
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.bootclock import Stamp
from pipeline.errors import ClaimLost, LedgerError, NotEligible, SubmitRefused
from pipeline.filenames import stored
from pipeline.ledger import postgres_sql as q
from pipeline.ledger import statements as S
from pipeline.ledger.postgres_claims import PostgresClaims
from pipeline.ledger.postgres_schema import ADVISORY_LOCK, LOCK_FIND, LOCK_WINDOW
from pipeline.ledger.records import LastPost, PhotoRow, PostTimes, WindowFull, WindowRule
from pipeline.ledger.sqlite_import import import_rows
from pipeline.ledger.sqlite_rows import error_text, now_text, row_of


class PostgresOrders(PostgresClaims):
    """Order changes; each is one transaction, retried whole after a lost connection."""

    def mark_uploaded(
        self, photo_id: int, order_id: str, *, refused: bool = False, fence: int | None = None
    ) -> PhotoRow:
        """As SqliteLedger.mark_uploaded: the refusal is recorded even when the claim was lost
        meanwhile (ClaimLost after it)."""

        def body(c: q.Conn) -> PhotoRow | ClaimLost:
            if refused:
                self._posts_written = True
                q.answer_post(
                    c, self._window_log, photo_id, "refused", Stamp.now().seconds, time.time()
                )
            claim, claim_params = self._claim_sql(fence)
            try:
                return self._mark(
                    photo_id,
                    S.TO_UPLOADED,
                    (order_id,),
                    only_if=S.UNCHARGED + claim,
                    only_if_params=claim_params,
                )
            except NotEligible:
                if (lost := self._claim_lost(c, photo_id, fence)) is None:
                    raise
                return lost  # raised once the refusal is committed

        done = self._run(body)
        if isinstance(done, ClaimLost):
            raise done
        return done

    def mark_submitting(
        self,
        photo_id: int,
        order_id: str | None = None,
        *,
        window: WindowRule | None = None,
        key_fingerprint: str = "",
        fence: int | None = None,
        send_within: float = 0.0,
    ) -> PhotoRow:
        """Intent before spending, in one short transaction: under the account's advisory
        lock, count its window on the database's clock, check this run's live claim (with
        ``fence``: the claim that token came with; ClaimLost otherwise), mark the photo, insert
        the intent, commit. Returns only once COMMIT answered: then, and only then, may the
        POST leave, within ``send_within`` seconds (see SqliteLedger.mark_submitting)."""
        params: tuple[object, ...] = ()
        if order_id is None:
            sets = S.TO_SUBMITTING
            only_if = S.UPLOADED_UNCHARGED
        else:
            sets = S.TO_SUBMITTING_UPLOADED
            params = (order_id,)
            only_if = S.UNSENT_UNCHARGED
        claim, claim_params = self._claim_sql(fence, always=True)

        def body(c: q.Conn) -> PhotoRow:
            # Every intent is inserted under the window's lock, held to COMMIT, even without a
            # rule to check: then order POSTs commit in the order of their ids, which is what
            # lets each handle read only the rows after the last it read (window_log.py).
            c.execute(ADVISORY_LOCK, (LOCK_WINDOW,))
            if window is not None and (wait := q.window_wait(c, self._window_log, window)):
                raise WindowFull(wait)
            try:
                row = self._mark(
                    photo_id, sets, params, only_if=only_if + claim, only_if_params=claim_params
                )
            except NotEligible:
                if (lost := self._claim_lost(c, photo_id, fence, always=True)) is not None:
                    raise lost from None
                row = self._one(c, photo_id)
                found = c.execute(q.pg(S.CLAIM_HOLDER), (photo_id,))
                holder = (found.fetchone() or (None,))[0]
                paid = ", and it was charged already" if row.charged else ""
                if self.owner is not None and holder != self.owner:
                    paid += f", and the run {holder or 'that claimed it'} holds it now"
                raise SubmitRefused(
                    f"refusing to submit {row.path}: it is {row.state.value}, not uploaded"
                    f"{paid} (ledger {self.path}, photo {photo_id})"
                ) from None
            stamp = Stamp.now()
            self._posts_written = True
            c.execute(
                q.pg(S.RECORD_INTENT),
                (photo_id, row.order_id, stamp.boot, stamp.seconds, time.time(), key_fingerprint,
                 "" if window is None else window.account, send_within),
            )  # fmt: skip
            return row

        return self._run(body)

    def mark_submitted(
        self, photo_id: int, image_id: str | None, eta: int | None, *, answered: bool = False
    ) -> PhotoRow:
        """Charged: by an answer to our POST (``answered``), or as the order's details show;
        its claim ends here (as SqliteLedger.mark_submitted)."""

        def body(c: q.Conn) -> PhotoRow:
            if answered:
                self._posts_written = True
                q.answer_post(
                    c, self._window_log, photo_id, "accepted", Stamp.now().seconds, time.time()
                )
            return self._mark(
                photo_id,
                S.TO_SUBMITTED,
                (image_id, eta, now_text()),
            )

        row = self._run(body)
        self._fences.pop(photo_id, None)  # its claim ended: kept no longer (a run of 100,000)
        return row

    def mark_lost(self, photo_id: int, reason: str = "") -> None:
        """As SqliteLedger.mark_lost: the photo is ``unknown`` until its order's details
        settle it."""

        def body(c: q.Conn) -> None:
            self._posts_written = True
            q.answer_post(c, self._window_log, photo_id, "lost", Stamp.now().seconds, time.time())
            c.execute(q.pg(S.MARK_LOST), (error_text(reason or None), now_text(), photo_id))

        self._run(body)

    def mark_unsent(self, photo_id: int) -> None:
        """As SqliteLedger.mark_unsent: an intent never sent leaves the order window."""

        def body(c: q.Conn) -> None:
            self._posts_written = True
            q.answer_post(c, self._window_log, photo_id, "unsent", Stamp.now().seconds, time.time())

        self._run(body)

    def last_post(self, photo_id: int) -> LastPost | None:
        """The photo's latest order POST, and the latest moment it may have left (on the boot
        clock of the machine that sent it: another machine's is never taken as this one's)."""
        rows = self._read(q.pg(S.LAST_POST), (photo_id,))
        return LastPost(rows[0][0], Stamp(rows[0][1], rows[0][2])) if rows else None

    def mark_not_received(
        self, photo_id: int, post_id: int | None, *, fence: int | None = None
    ) -> PhotoRow:
        """As SqliteLedger.mark_not_received."""
        claim, claim_params = self._claim_sql(fence)

        def body(c: q.Conn) -> PhotoRow:
            try:
                return self._mark(
                    photo_id,
                    S.TO_UPLOADED_AGAIN,
                    (),
                    only_if=S.UNSETTLED_LATEST_POST + claim,
                    only_if_params=(post_id or 0, *claim_params),
                )
            except NotEligible:
                if (lost := self._claim_lost(c, photo_id, fence)) is not None:
                    raise lost from None
                row = self._one(c, photo_id)
                raise SubmitRefused(
                    f"not settling {row.path}: it is {row.state.value} now, or was posted again "
                    f"(ledger {self.path}, photo {photo_id})"
                ) from None

        return self._run(body)

    def mark_unknown(self, photo_id: int, reason: str) -> PhotoRow:
        """As SqliteLedger.mark_unknown."""

        def body(c: q.Conn) -> PhotoRow:
            try:
                return self._mark(
                    photo_id,
                    S.TO_UNKNOWN,
                    (error_text(reason),),
                    only_if=S.UNSETTLED,
                )
            except NotEligible:
                return self._one(c, photo_id)

        return self._run(body)

    def recent_posts(self, within_seconds: float, account: str = "") -> list[PostTimes]:
        """The account's order POSTs of the last ``within_seconds`` on the database's clock,
        refusals left out, their times given on this machine's wall clock (ages measured by
        the database)."""
        rows = self._read(
            "SELECT extract(epoch FROM clock_timestamp() - intent_at)::float8, "
            "extract(epoch FROM clock_timestamp() - answer_at)::float8 FROM order_posts "
            "WHERE (outcome IS NULL OR outcome NOT IN ('refused', 'unsent')) "
            "AND (account = '' OR %s IN (account, '')) "
            "AND intent_at >= clock_timestamp() - make_interval(secs => %s)",
            (account, within_seconds),
        )
        now = time.time()
        return [PostTimes("", 0.0, now - i, None, None if a is None else now - a) for i, a in rows]

    def reorder(self, photo_ids: Sequence[int]) -> list[PhotoRow]:
        """Clear the charged mark: these photos are ordered again (and paid again) next run.
        Their decisions go: the new result is another photo to look at."""

        def body(c: q.Conn) -> list[PhotoRow]:
            reordered = [
                row_of(r)
                for r in q.SqliteStyle(c)
                .execute(S.REORDER, (now_text(), json.dumps(list(photo_ids))))
                .fetchall()
            ]
            q.SqliteStyle(c).execute(S.CLEAR_REVIEWS, (json.dumps([r.id for r in reordered]),))
            return reordered

        return self._run(body)

    def set_output_paths(self, photo_id: int, output_paths: Sequence[str]) -> None:
        self._run(
            lambda c: c.execute(
                q.pg(S.OUTPUT_PATHS), (json.dumps(list(output_paths)), now_text(), photo_id)
            )
        )

    def mark_failed(
        self, photo_id: int, error: str, *, retryable: bool, fence: int | None = None
    ) -> PhotoRow:
        """As SqliteLedger.mark_failed."""
        claim, claim_params = self._claim_sql(fence)

        def body(c: q.Conn) -> PhotoRow:
            try:
                return self._mark(
                    photo_id,
                    S.TO_FAILED,
                    (error_text(error), int(retryable)),
                    only_if=claim,
                    only_if_params=claim_params,
                )
            except NotEligible:
                if (lost := self._claim_lost(c, photo_id, fence)) is not None:
                    raise lost from None
                raise

        return self._run(body)

    def mark_pending(self, photo_id: int, *, fence: int | None = None) -> PhotoRow:
        """Upload afresh (the API forgot the upload); never for a charged photo."""
        claim, claim_params = self._claim_sql(fence)

        def body(c: q.Conn) -> PhotoRow:
            try:
                return self._mark(
                    photo_id,
                    S.TO_PENDING,
                    (),
                    only_if=S.UNCHARGED + claim,
                    only_if_params=claim_params,
                )
            except NotEligible:
                if (lost := self._claim_lost(c, photo_id, fence)) is not None:
                    raise lost from None
                raise LedgerError(
                    f"refusing to upload photo {photo_id} again: it was charged already "
                    f"(ledger {self.path}); only the reorder command orders a charged photo again"
                ) from None

        return self._run(body)

    def mark_completed(
        self, photo_id: int, result_urls: Sequence[str], output_paths: Sequence[str]
    ) -> PhotoRow:
        return self._mark(
            photo_id,
            S.TO_COMPLETED,
            (json.dumps(list(result_urls)), json.dumps(list(output_paths))),
        )

    def reset_failed(self, *, include_permanent: bool) -> int:
        """As SqliteLedger.reset_failed."""
        return self._run(
            lambda c: c.execute(q.pg(S.RESET_FAILED), (now_text(), int(include_permanent))).rowcount
        )

    def import_ledger(self, source: Path) -> int | None:
        """Copy a SQLite aihd ledger into this one; None when it was imported before."""
        from pipeline.ledger.sqlite import SqliteLedger

        key = stored(str(source.resolve()))
        if not source.is_file():
            raise LedgerError(f"cannot import {source}: no such file")
        other = SqliteLedger(source)  # refuses another tool's file; migrates an older one

        def body(c: q.Conn) -> int | None:
            c.execute(ADVISORY_LOCK, (LOCK_FIND,))
            # Its order POSTs too commit in the order of their ids (see mark_submitting).
            c.execute(ADVISORY_LOCK, (LOCK_WINDOW,))
            if c.execute(q.pg(S.IMPORT_DONE), (key,)).fetchone():
                return None
            last_post = c.execute(S.LAST_POST_ID).fetchone()
            with other.atomic() as source_conn:
                count = import_rows(q.SqliteStyle(c), source_conn)  # type: ignore[arg-type]
            # The imported order POSTs' times, on the database's clock from their Unix times.
            c.execute(
                "UPDATE order_posts SET intent_at = to_timestamp(intent_wall), "
                "answer_at = to_timestamp(answer_wall) WHERE id > %s",
                (last_post[0] if last_post else 0,),
            )
            c.execute(q.pg(S.IMPORT_RECORD), (key, now_text(), count))
            return count

        try:
            return self._run(body)
        finally:
            other.close()
