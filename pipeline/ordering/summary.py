"""The end of a run: counts per state, orders spent, retries, 429s, time, and the exit code."""

from __future__ import annotations

__all__ = ["RunSummary", "summarize"]

import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field

from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_UNREACHABLE,
)
from pipeline.filenames import shown
from pipeline.ledger import Ledger, State
from pipeline.ordering.flow import RunCounters

# The codes a finished or stopped run decides; 2, 3 and 5 belong to the errors that cause
# them (pipeline.errors: exit_code).

_MAX_LISTED_FAILURES = 20


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did: its outcome and exit code, and its counts (`--json` prints it)."""

    outcome: str  # finished | some-failed | stopped-by-budget | interrupted | api-unreachable
    exit_code: int
    photos: int
    states: dict[str, int]
    orders_spent: int  # charged or may have been: confirmed, plus `unconfirmed`
    orders_accepted: int
    orders_posted: int  # POSTs sent, a 429 or a lost answer included
    outcomes_unknown: int  # answers lost, each settled by the order's details
    unconfirmed: int  # this run's POSTs whose outcome is still unknown: may have been charged
    settling: int  # lost answers still unsettled at a stop: the next run settles them
    uploads: int
    retries: int
    rate_limited: int
    seconds: float
    failures: list[dict[str, str]]
    ledger: str
    held_by_other_runs: int = 0  # photos another run of the account was working on
    unknown: list[dict[str, str]] = field(default_factory=list)  # held: may have been charged
    collected: dict[str, object] | None = None  # the collect's summary, with `run --collect`

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def render(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.states.items())) or "none"
        lines = [
            f"aihd run: {self.outcome} in {self.seconds:.1f}s",
            f"  photos: {self.photos} ({states})",
            f"  orders spent: {self.orders_spent} (answered: {self.orders_accepted}, "
            f"lost answers found charged: "
            f"{self.orders_spent - self.orders_accepted - self.unconfirmed}, "
            f"may have been charged (outcome unknown): {self.unconfirmed}); "
            f"order posts: {self.orders_posted}; uploads: {self.uploads}",
            f"  retries: {self.retries}; rate-limited (429): {self.rate_limited}",
            f"  ledger: {self.ledger}",
        ]
        if self.unknown or self.settling:
            lines.append(
                f"  held as unknown (may have been charged; never ordered again by itself, the "
                f"next run reads their orders again): {len(self.unknown)}; still settling at "
                f"the stop: {self.settling}"
            )
        if self.held_by_other_runs:
            lines.append(
                f"  {self.held_by_other_runs} photos are another run's (it holds their claims); "
                "they were left to it"
            )
        for failure in self.failures:
            lines.append(f"  failed: {failure['path']}: {failure['error']}")
        for held in self.unknown[:_MAX_LISTED_FAILURES]:
            lines.append(f"  unknown: {held['path']}: {held['error']}")
        if self.collected is not None:
            c = self.collected
            lines.append(
                f"  collected: {c['completed']} completed, {c['waiting']} waiting, "
                f"{c['failed']} failed; files written: {c['downloads']}; output: {c['output']}"
            )
        if self.exit_code == EXIT_BUDGET:
            lines.append("  stopped by a budget: run the same command again to go on")
        elif self.exit_code == EXIT_INTERRUPTED:
            lines.append("  interrupted: run the same command again to go on")
        elif self.exit_code == EXIT_UNREACHABLE:
            lines.append(
                "  the API could not be reached; nothing was lost: run the same command again"
            )
        return "\n".join(lines)


def summarize(
    ledger: Ledger,
    scope: Sequence[str],
    seen_ids: Set[int],
    counters: RunCounters,
    *,
    stop_reason: str | None,
    seconds: float,
    settling: int = 0,
    held_by_other_runs: int = 0,
    known_unknown: Mapping[int, str | None] | None = None,
) -> RunSummary:
    """States over the manifest's folders as the ledger holds them now; failures of this run.

    Only photos this run found count as failures (exit 1): a broken file deleted since an
    earlier run must not fail every night after.
    """
    states = {state.value: n for state, n in ledger.counts(scope).items() if n}
    # A charged photo whose result failed is collect's to report and retry, not the run's.
    failed = [
        row for row in ledger.photos([State.FAILED]) if row.id in seen_ids and not row.charged
    ]
    failures = [
        {"path": shown(row.path), "error": row.error or "unknown"}
        for row in failed[:_MAX_LISTED_FAILURES]
    ]
    # Photos whose order may have been charged and could not be settled either way: a run
    # that finishes with any did not end well for them (exit 1), unless they were held so,
    # for the same reason, before it and it posted nothing more (reported the night it came).
    held = [row for row in ledger.photos([State.UNKNOWN], current_only=False) if row.id in seen_ids]
    known = known_unknown or {}
    newly_held = counters.unconfirmed or any(
        row.id not in known or known[row.id] != row.error for row in held
    )
    unknown = [
        {
            "path": shown(row.path),
            "order_id": row.order_id or "",
            "error": row.error or "outcome unknown",
        }
        for row in held
    ]
    if stop_reason == "interrupted":
        outcome, code = "interrupted", EXIT_INTERRUPTED
    elif stop_reason == "budget":
        outcome, code = "stopped-by-budget", EXIT_BUDGET
    elif stop_reason == "unreachable":
        outcome, code = "api-unreachable", EXIT_UNREACHABLE
    elif failed or newly_held:
        outcome, code = "some-failed", EXIT_SOME_FAILED
    else:
        outcome, code = "finished", EXIT_OK
    return RunSummary(
        outcome=outcome,
        exit_code=code,
        photos=sum(states.values()),
        states=dict(states),
        orders_spent=counters.orders_spent,
        orders_accepted=counters.orders_accepted,
        orders_posted=counters.orders_posted,
        outcomes_unknown=counters.outcomes_unknown,
        unconfirmed=counters.unconfirmed,
        settling=settling,
        uploads=counters.uploads,
        retries=counters.retries,
        rate_limited=counters.rate_limited,
        seconds=round(seconds, 3),
        failures=failures,
        ledger=ledger.path,
        held_by_other_runs=held_by_other_runs,
        unknown=unknown,
    )
