"""Store access for runs: create (lease + quarantine check), timeline rows, queries. Session in, rows out.

One run per host: creating a run inserts a row into ``workflow_host_leases`` whose primary key is
the host name, in the same transaction as the run, so two controllers (or two CLI calls) racing for
one host cannot both succeed: the loser's insert fails on the key and the run is refused.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.workflows.errors import HostBusyError, HostQuarantinedError, UnknownRunError
from controller.workflows.models import HostLease, HostQuarantine, WorkflowRun, WorkflowRunStep
from controller.workflows.state import TERMINAL, RunState

SessionFactory = Callable[[], AbstractContextManager[Session]]
OUTPUT_CHARS = 4000  # output tail stored per step


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    kind: str
    phase: str
    name: str
    status: str
    command: str | None
    exit_code: int | None
    duration: float | None
    stdout_tail: str
    stderr_tail: str
    message: str
    started_at: float


@dataclass(frozen=True)
class RunSummary:
    id: int
    host: str
    playbook: str
    state: str
    dry_run: bool
    failed_step: str | None
    error: str | None
    captured: dict[str, Any]
    created_at: float
    finished_at: float | None
    timeline: tuple[TimelineEntry, ...] = ()
    started_by: str = ""
    #: an operator's abort (controller/workflows/aborts.py): who, when asked, when the engine took it
    abort_requested_by: str | None = None
    abort_requested_at: float | None = None
    aborted_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["timeline"] = [e.__dict__ for e in self.timeline]
        return data


def create_run(sessions: SessionFactory, *, host: str, playbook: str, playbook_path: str,
               variables: dict[str, Any], dry_run: bool, now: float, started_by: str = "",
               with_run: Callable[[Session, WorkflowRun], None] | None = None) -> int:
    """Insert the run and its host lease, or raise HostQuarantinedError / HostBusyError.
    ``with_run`` adds to the new run in the same transaction (a later rollback's record)."""
    try:
        with sessions() as session:
            quarantine = session.get(HostQuarantine, host)
            if quarantine is not None:
                raise HostQuarantinedError(host, quarantine.reason)
            lease = session.get(HostLease, host)
            if lease is not None:
                raise HostBusyError(host, lease.run_id)
            token = f"boxkeeper-run-{secrets.token_hex(6)}@{socket.gethostname()}"
            run = WorkflowRun(host=host, playbook=playbook, playbook_path=playbook_path, variables=variables,
                              dry_run=dry_run, lock_token=token, state=RunState.LOCK, phase_status="running",
                              captured={}, started_by=started_by,
                              created_at=now, updated_at=now)
            session.add(run)
            session.flush()
            run.lock_token = token.replace("boxkeeper-run-", f"boxkeeper-run-{run.id}-", 1)
            session.add(HostLease(host=host, run_id=run.id, acquired_at=now))
            if with_run is not None:
                with_run(session, run)
            session.flush()
            return run.id
    except IntegrityError:
        with sessions() as session:
            lease = session.get(HostLease, host)
            raise HostBusyError(host, lease.run_id if lease else None) from None


def get_run(session: Session, run_id: int) -> WorkflowRun:
    run = session.get(WorkflowRun, run_id)
    if run is None:
        raise UnknownRunError(f"no run with id {run_id}")
    return run


def add_entry(session: Session, run_id: int, *, kind: str, phase: str, name: str, status: str,
              now: float, command: str | None = None, message: str = "") -> int:
    seq = session.scalar(select(func.coalesce(func.max(WorkflowRunStep.seq), 0))
                         .where(WorkflowRunStep.run_id == run_id)) or 0
    row = WorkflowRunStep(run_id=run_id, seq=seq + 1, kind=kind, phase=phase, name=name, status=status,
                          command=command, message=message, started_at=now,
                          finished_at=now if status != "running" else None)
    session.add(row)
    session.flush()
    return row.id


def finish_entry(session: Session, entry_id: int, *, status: str, now: float, command: str | None,
                 exit_code: int | None, duration: float | None, stdout: str, stderr: str,
                 message: str) -> None:
    row = session.get(WorkflowRunStep, entry_id)
    assert row is not None
    row.status, row.finished_at, row.command = status, now, command
    row.exit_code, row.duration, row.message = exit_code, duration, message
    row.stdout_tail, row.stderr_tail = stdout[-OUTPUT_CHARS:], stderr[-OUTPUT_CHARS:]


def summary(session: Session, run_id: int, *, with_timeline: bool = True) -> RunSummary:
    run = get_run(session, run_id)
    timeline: tuple[TimelineEntry, ...] = ()
    if with_timeline:
        rows = session.scalars(select(WorkflowRunStep).where(WorkflowRunStep.run_id == run_id)
                               .order_by(WorkflowRunStep.seq))
        timeline = tuple(TimelineEntry(r.seq, r.kind, r.phase, r.name, r.status, r.command, r.exit_code,
                                       r.duration, r.stdout_tail, r.stderr_tail, r.message, r.started_at)
                         for r in rows)
    return RunSummary(run.id, run.host, run.playbook, run.state, run.dry_run, run.failed_step, run.error,
                      dict(run.captured), run.created_at, run.finished_at, timeline,
                      run.started_by or "", run.abort_requested_by, run.abort_requested_at, run.aborted_at)


def entries_after(session: Session, run_id: int, seq: int) -> list[TimelineEntry]:
    """The run's finished timeline rows after ``seq`` (a follower's next page; a step still running
    is not returned until it has its result)."""
    rows = session.scalars(select(WorkflowRunStep).where(WorkflowRunStep.run_id == run_id,
                                                         WorkflowRunStep.seq > seq)
                           .order_by(WorkflowRunStep.seq))
    out = []
    for r in rows:
        if r.status == "running":
            break
        out.append(TimelineEntry(r.seq, r.kind, r.phase, r.name, r.status, r.command, r.exit_code,
                                 r.duration, r.stdout_tail, r.stderr_tail, r.message, r.started_at))
    return out


def list_runs(session: Session, limit: int = 50, *, hosts: Collection[str] | None = None,
              state: str | None = None, since: float | None = None,
              until: float | None = None) -> list[RunSummary]:
    """Newest first; only runs on ``hosts``, in ``state``, started in [since, until) when given."""
    stmt = select(WorkflowRun.id)
    if hosts is not None:
        stmt = stmt.where(WorkflowRun.host.in_(list(hosts)))
    if state is not None:
        stmt = stmt.where(WorkflowRun.state == state)
    if since is not None:
        stmt = stmt.where(WorkflowRun.created_at >= since)
    if until is not None:
        stmt = stmt.where(WorkflowRun.created_at < until)
    ids = session.scalars(stmt.order_by(WorkflowRun.id.desc()).limit(limit))
    return [summary(session, i, with_timeline=False) for i in ids]


def unfinished_runs(session: Session) -> list[int]:
    return list(session.scalars(select(WorkflowRun.id)
                                .where(WorkflowRun.state.not_in([s.value for s in TERMINAL]))
                                .order_by(WorkflowRun.id)))


def release_lease(session: Session, host: str, run_id: int) -> None:
    session.execute(delete(HostLease).where(HostLease.host == host, HostLease.run_id == run_id))


def quarantine(session: Session, host: str, run_id: int, reason: str, now: float) -> None:
    if session.get(HostQuarantine, host) is None:
        session.add(HostQuarantine(host=host, run_id=run_id, reason=reason, since=now))


def unquarantine(session: Session, host: str) -> bool:
    """Clear the flag; False when the host was not quarantined."""
    row = session.get(HostQuarantine, host)
    if row is None:
        return False
    session.delete(row)
    return True


def quarantined_hosts(session: Session) -> Iterator[HostQuarantine]:
    yield from session.scalars(select(HostQuarantine).order_by(HostQuarantine.host))
