"""Soft/hard states and flapping, with Nagios semantics. Pure: values in, values out.

Hard and soft states
    A problem (any non-OK result) starts a *soft* state at attempt 1; each further non-OK result
    counts one more attempt; at attempt ``max_attempts`` (the check's ``retries``) the state is
    *hard*. While soft the check is re-run every ``retry_interval`` instead of ``interval``
    (:func:`next_delay`). Once hard non-OK, a change to another non-OK status is a hard change at
    once. Recovery to OK is always hard at once; after a soft problem it is a "soft recovery" that
    does not change the hard state. Before the first result the check is UNKNOWN "pending" and
    soft; the first OK (or the first hard problem) is its first hard state. ``last_change`` is
    the wall time of the last hard state change.

Flapping
    The last ``history_size`` (21) results give 20 possible changes; each change is weighted from
    ``weight_low`` (0.8, oldest) to ``weight_high`` (1.2, newest) and the weighted sum is given as
    a percentage of 20. A check starts flapping above ``flap_high`` (50%) and stops below
    ``flap_low`` (25%). Missing history counts as "no change" (as Nagios, which pre-fills it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from agent.checks.base import CheckResult, CheckSpec
from agent.report import CheckReport, PerfValue, Sample, Status


@dataclass(frozen=True)
class StatePolicy:
    max_attempts: int = 1
    flap_low: float = 25.0
    flap_high: float = 50.0
    history_size: int = 21
    weight_low: float = 0.8
    weight_high: float = 1.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be 1 or more")
        if not 0 <= self.flap_low <= self.flap_high <= 100:
            raise ValueError("flap thresholds must satisfy 0 <= flap_low <= flap_high <= 100")
        if self.history_size < 3:
            raise ValueError("history_size must be 3 or more")


@dataclass(frozen=True)
class CheckState:
    name: str
    type: str
    status: Status = Status.UNKNOWN
    summary: str = "pending"
    hard: bool = False
    hard_status: Optional[Status] = None  # the last hard state; None before the first
    attempt: int = 1
    last_change: Optional[float] = None
    flapping: bool = False
    percent_change: float = 0.0
    history: tuple[Status, ...] = ()  # oldest first, at most history_size
    duration_seconds: float = 0.0
    perfdata: tuple[PerfValue, ...] = ()
    details: str = ""
    samples: tuple[Sample, ...] = ()  # the latest result's series (see CheckResult)

    @property
    def pending(self) -> bool:
        return not self.history


@dataclass(frozen=True)
class Transition:
    state: CheckState
    hard_changed: bool  # the hard state changed (including the first hard state)
    flapping_changed: bool  # flapping started or stopped


def pending(name: str, check_type: str) -> CheckState:
    """The state of a check that has not run yet."""
    return CheckState(name, check_type)


def policy_for(cfg: CheckSpec, flap_low: float = 25.0, flap_high: float = 50.0) -> StatePolicy:
    return StatePolicy(max_attempts=cfg.retries, flap_low=flap_low, flap_high=flap_high)


def percent_state_change(history: tuple[Status, ...], policy: StatePolicy) -> float:
    """Nagios' weighted percent state change over the history (oldest first)."""
    n = policy.history_size
    recent = history[-n:]
    # Align to the newest end of an n-slot window; missing slots are "no change".
    offset = n - len(recent)
    total = 0.0
    for i in range(1, len(recent)):
        if recent[i] != recent[i - 1]:
            x = offset + i  # 1..n-1, n-1 is the newest change
            total += policy.weight_low + (x - 1) * (policy.weight_high - policy.weight_low) / (n - 2)
    return total * 100.0 / (n - 1)


def advance(
    state: CheckState, result: CheckResult, *, duration: float, now: float, policy: StatePolicy,
) -> Transition:
    """The state after one more result; ``now`` is wall time (for ``last_change``)."""
    status = result.status
    hard_status: Optional[Status]
    previous_ok = state.pending or state.status is Status.OK
    if status is Status.OK:
        hard, attempt, hard_status = True, 1, Status.OK
    elif previous_ok:
        attempt = 1
        hard = policy.max_attempts <= 1
        hard_status = status if hard else state.hard_status
    elif state.hard and state.hard_status is not Status.OK:
        hard, attempt, hard_status = True, policy.max_attempts, status
    else:
        attempt = min(state.attempt + 1, policy.max_attempts)
        hard = attempt >= policy.max_attempts
        hard_status = status if hard else state.hard_status
    hard_changed = hard and hard_status != state.hard_status

    history = (*state.history, status)[-policy.history_size:]
    pct = percent_state_change(history, policy)
    flapping = pct >= policy.flap_low if state.flapping else pct > policy.flap_high

    new = replace(
        state,
        status=status,
        summary=result.summary,
        hard=hard,
        hard_status=hard_status,
        attempt=attempt,
        last_change=now if hard_changed else state.last_change,
        flapping=flapping,
        percent_change=pct,
        history=history,
        duration_seconds=duration,
        perfdata=result.perfdata,
        details=result.details,
        samples=result.samples,
    )
    return Transition(new, hard_changed, flapping != state.flapping)


def next_delay(state: CheckState, cfg: CheckSpec) -> float:
    """Seconds until the next run: ``retry_interval`` while soft-failing, else ``interval``."""
    if not state.pending and state.status is not Status.OK and not state.hard:
        assert cfg.retry_interval is not None  # CheckSpec.__post_init__ sets it
        return cfg.retry_interval
    return cfg.interval


def to_report(state: CheckState, policy: StatePolicy) -> CheckReport:
    return CheckReport(
        name=state.name,
        type=state.type,
        status=state.status,
        hard=state.hard,
        flapping=state.flapping,
        summary=state.summary,
        duration_seconds=round(state.duration_seconds, 6),
        attempt=state.attempt,
        max_attempts=policy.max_attempts,
        last_change=state.last_change,
        perfdata=state.perfdata,
    )
