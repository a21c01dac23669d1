"""Soft/hard states and flapping (pure; Nagios semantics)."""

from __future__ import annotations

import pytest

from agent.checks.base import CheckResult
from agent.config import parse
from agent.report import Status
from agent.state import (
    CheckState,
    StatePolicy,
    Transition,
    advance,
    next_delay,
    pending,
    percent_state_change,
    to_report,
)

OK, WARN, CRIT, UNK = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN


def feed(
    statuses: list[Status],
    *,
    attempts: int = 3,
    state: CheckState | None = None,
    policy: StatePolicy | None = None,
) -> list[Transition]:
    policy = policy or StatePolicy(max_attempts=attempts)
    state = state or pending("portal", "http")
    out = []
    for i, status in enumerate(statuses):
        t = advance(state, CheckResult(status, f"result {i}"), duration=0.01, now=1000.0 + i, policy=policy)
        out.append(t)
        state = t.state
    return out


def test_pending_state_is_unknown_soft() -> None:
    report = to_report(pending("portal", "http"), StatePolicy(max_attempts=3))
    assert (report.status, report.hard, report.summary, report.max_attempts) == (UNK, False, "pending", 3)
    assert report.last_change is None


def test_failure_becomes_hard_after_retries_attempts() -> None:
    steps = feed([OK, CRIT, CRIT, CRIT, CRIT])
    rows = [(t.state.status, t.state.hard, t.state.attempt, t.hard_changed) for t in steps]
    assert rows == [
        (OK, True, 1, True),  # the first result is the first hard state
        (CRIT, False, 1, False),
        (CRIT, False, 2, False),
        (CRIT, True, 3, True),  # attempt 3 of 3: hard
        (CRIT, True, 3, False),
    ]
    assert steps[3].state.last_change == 1003.0
    assert steps[4].state.last_change == 1003.0


def test_recovery_is_hard_at_once() -> None:
    steps = feed([CRIT, CRIT, CRIT, OK])
    last = steps[-1]
    assert (last.state.status, last.state.hard, last.state.attempt, last.hard_changed) == (OK, True, 1, True)
    assert last.state.last_change == 1003.0


def test_soft_recovery_does_not_change_the_hard_state() -> None:
    steps = feed([OK, CRIT, CRIT, OK])
    assert [t.hard_changed for t in steps] == [True, False, False, False]
    assert steps[-1].state.last_change == 1000.0
    assert steps[-1].state.hard and steps[-1].state.attempt == 1


def test_failures_from_the_start_become_the_first_hard_state() -> None:
    steps = feed([CRIT, CRIT, CRIT])
    assert [t.hard_changed for t in steps] == [False, False, True]
    assert steps[0].state.hard_status is None


def test_retries_one_is_hard_immediately() -> None:
    steps = feed([OK, WARN], attempts=1)
    assert steps[1].state.hard and steps[1].hard_changed and steps[1].state.attempt == 1


def test_changes_between_problem_states_count_attempts_while_soft() -> None:
    steps = feed([OK, WARN, CRIT, UNK])
    assert [(t.state.status, t.state.attempt, t.state.hard) for t in steps[1:]] == [
        (WARN, 1, False),
        (CRIT, 2, False),
        (UNK, 3, True),
    ]


def test_hard_problem_changing_to_another_problem_is_a_hard_change_at_once() -> None:
    steps = feed([CRIT, CRIT, CRIT, WARN])
    last = steps[-1]
    assert (last.state.status, last.state.hard, last.hard_changed) == (WARN, True, True)
    assert last.state.last_change == 1003.0


def test_next_delay_retries_faster_while_soft_failing() -> None:
    cfg = parse(
        {
            "checks": [
                {
                    "name": "p",
                    "type": "tcp",
                    "address": "x:1",
                    "interval": "60s",
                    "retry_interval": "5s",
                    "retries": 3,
                }
            ]
        }
    ).checks[0]
    steps = feed([OK, CRIT, CRIT, CRIT, OK])
    assert next_delay(pending("p", "tcp"), cfg) == 60
    assert [next_delay(t.state, cfg) for t in steps] == [60, 5, 5, 60, 60]


def test_report_carries_attempts_summary_and_perfdata() -> None:
    state = feed([OK, CRIT])[-1].state
    report = to_report(state, StatePolicy(max_attempts=3))
    assert (report.name, report.type, report.status, report.hard) == ("portal", "http", CRIT, False)
    assert (report.attempt, report.max_attempts, report.summary) == (1, 3, "result 1")
    assert report.duration_seconds == 0.01


# -- flapping ----------------------------------------------------------------------------------


def test_percent_state_change_weights_newer_changes_more() -> None:
    policy = StatePolicy()
    newest_change = (OK,) * 20 + (CRIT,)
    oldest_change = (OK,) + (CRIT,) * 20
    assert percent_state_change(newest_change, policy) == pytest.approx(1.2 * 100 / 20)
    assert percent_state_change(oldest_change, policy) == pytest.approx(0.8 * 100 / 20)
    alternating = tuple(OK if i % 2 else CRIT for i in range(21))
    assert percent_state_change(alternating, policy) == pytest.approx(100.0)
    assert percent_state_change((OK,) * 21, policy) == 0.0


def test_short_history_counts_missing_results_as_no_change() -> None:
    policy = StatePolicy()
    # two results, one change, in the newest slot
    assert percent_state_change((OK, CRIT), policy) == pytest.approx(6.0)


def test_flapping_starts_above_high_and_stops_below_low() -> None:
    policy = StatePolicy(max_attempts=1)
    flapping = [OK, CRIT] * 10 + [OK]
    steps = feed(flapping, policy=policy)
    started = next(i for i, t in enumerate(steps) if t.state.flapping)
    assert steps[started].flapping_changed
    assert steps[started].state.percent_change > 50.0
    assert steps[started - 1].state.percent_change <= 50.0

    calm = feed([OK] * 21, policy=policy, state=steps[-1].state)
    stopped = next(i for i, t in enumerate(calm) if not t.state.flapping)
    assert calm[stopped].flapping_changed
    assert calm[stopped].state.percent_change < 25.0
    assert calm[stopped - 1].state.percent_change >= 25.0  # hysteresis: kept flapping between 25 and 50
    assert not any(t.state.flapping for t in calm[stopped:])


def test_flap_thresholds_are_parameters() -> None:
    sensitive = StatePolicy(max_attempts=1, flap_low=1.0, flap_high=5.0)
    steps = feed([OK, OK, CRIT], policy=sensitive)
    assert steps[-1].state.flapping  # 6% > 5%
    assert not feed([OK, OK, CRIT], attempts=1)[-1].state.flapping


def test_history_is_bounded() -> None:
    steps = feed([OK, CRIT] * 30, attempts=1)
    assert len(steps[-1].state.history) == 21


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        StatePolicy(max_attempts=0)
    with pytest.raises(ValueError):
        StatePolicy(flap_low=60, flap_high=50)
