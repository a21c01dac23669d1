"""Aborting one run: the request (from any process) and what the engine reads of it.

An abort is a request recorded on the run's row (``abort_requested_by``, ``abort_requested_at``) by
``boxkeeper runs abort ID``, ``POST /api/v1/runs/{id}/abort`` or the web page. The engine never
cuts a step off: it reads the request at each step boundary (before every step and every state of
the forward path) and then

* before the update phase has begun (LOCK … BACKUP_VERIFY; a backup changes nothing on the portal):
  runs the ``finally`` steps (cron back, public part reopened), removes the lock file and ends
  ABORTED — no incident, nothing held;
* once the update phase has begun (UPDATE, VERIFY): goes down the playbook's rollback path as a
  failed verify does, reason "aborted by <who>", and ends ROLLED_BACK (or QUARANTINED with its
  incident when the rollback fails). The release is NOT held: an operator's abort is no evidence
  against the release.

A run already rolling back (ROLLBACK, ROLLBACK_VERIFY) or ended is refused (:class:`RunStateError`):
its rollback is never cut short. The engine records ``aborted_at`` when it acts on the request, so a
controller restarted after that point continues the abort (reconcile reads the row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controller.workflows.errors import RunStateError
from controller.workflows.models import WorkflowRun
from controller.workflows.rollout_models import RolloutHost
from controller.workflows.runs import get_run
from controller.workflows.state import RunState

S = RunState
#: states in which an abort is taken at the next step boundary
ABORTABLE = (S.LOCK, S.PREFLIGHT, S.BACKUP, S.BACKUP_VERIFY, S.UPDATE, S.VERIFY)
#: of those, the states where the box may have changed already: an abort there rolls back
CHANGING = (S.UPDATE, S.VERIFY)
ROLLING_BACK = (S.ROLLBACK, S.ROLLBACK_VERIFY, S.ROLLBACK_FAILED)


@dataclass(frozen=True)
class AbortState:
    """What a page or ``runs show`` says of a run's abort."""

    requested_by: str
    requested_at: float
    taken_at: float | None  # when the engine acted on it; None: not yet (or the run ended first)


def abort_state(run: WorkflowRun) -> AbortState | None:
    if run.abort_requested_by is None or run.abort_requested_at is None:
        return None
    return AbortState(run.abort_requested_by, run.abort_requested_at, run.aborted_at)


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def request_abort(session: Session, run_id: int, *, actor: str, now: float) -> str:
    """Record ``actor``'s abort of the run (taken by the engine at its next step boundary); returns
    what was recorded. Raises UnknownRunError, or RunStateError when the run has ended or is rolling
    back. Asking again while a request is pending returns what the first one recorded."""
    result = session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.id == run_id, WorkflowRun.abort_requested_by.is_(None),
               WorkflowRun.outcome.is_(None), WorkflowRun.state.in_([s.value for s in ABORTABLE]))
        .values(abort_requested_by=actor, abort_requested_at=now)
        .execution_options(synchronize_session=False))
    run = get_run(session, run_id)
    session.refresh(run)
    if getattr(result, "rowcount", 0) == 1:
        if RunState(run.state) in CHANGING:
            return (f"abort of run {run_id} requested by {actor}: the update phase has begun, so the run "
                    "rolls back after the step going now")
        return (f"abort of run {run_id} requested by {actor}: nothing on the box has changed; the run ends "
                "ABORTED after the step going now and its final steps")
    if run.outcome is not None or RunState(run.state) not in ABORTABLE + ROLLING_BACK:
        raise RunStateError(f"run {run_id} has ended ({run.outcome or run.state}): nothing to abort")
    if RunState(run.state) in ROLLING_BACK:
        raise RunStateError(f"run {run_id} is rolling back already ({run.state}): a rollback is never cut "
                            "short; it ends ROLLED_BACK or QUARANTINED")
    assert run.abort_requested_by is not None and run.abort_requested_at is not None
    return (f"abort of run {run_id} was requested already by {run.abort_requested_by} at "
            f"{_stamp(run.abort_requested_at)}")


def abort_rollout_runs(session: Session, rollout_id: int, *, actor: str, now: float) -> list[int]:
    """Ask every going run of the rollout to abort (``rollouts abort ID --runs``); their ids."""
    asked = []
    run_ids = session.scalars(select(RolloutHost.run_id).where(RolloutHost.rollout_id == rollout_id,
                                                               RolloutHost.run_id.is_not(None)))
    for run_id in list(run_ids):
        if run_id is None:
            continue
        try:
            request_abort(session, run_id, actor=actor, now=now)
        except RunStateError:
            continue  # ended, or rolling back: left to finish
        asked.append(run_id)
    return asked
