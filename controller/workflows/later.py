"""Rolling back a succeeded run later (``boxkeeper runs rollback ID``): breakage found the next
morning.

A later rollback is a new run of the same playbook on the same host (its own id, lock, lease,
timeline and incident) whose ``{{ run_id }}`` is the earlier run's, so its rollback phase restores
the backup that run took. It starts with the earlier run's variables and captured values (versions
before, DB name …); secret ones are read again by the preflight steps that captured them. The
engine drives it LOCK → PREFLIGHT (those steps, then the playbook's ``rollback_later.check``: the
backup is still kept on the box) → ROLLBACK → ROLLBACK_VERIFY → ROLLED_BACK, or ROLLBACK_FAILED →
QUARANTINED, with the ``finally`` steps and the same incidents as any rollback.

Refused (:class:`RollbackRefused`, nothing started) when the run is unknown, did not succeed, was a
dry run or itself a later rollback, was rolled back later already, its playbook declares no
``rollback_later``, or a later run changed the host since (roll that one back first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from controller.store.base import Base
from controller.workflows import runs as store
from controller.workflows.errors import RollbackRefused
from controller.workflows.models import WorkflowRun
from controller.workflows.playbook import Playbook
from controller.workflows.runs import SessionFactory


class LaterRollback(Base):
    """A run that is the later rollback of another run, and who asked for it."""

    __tablename__ = "workflow_later_rollbacks"

    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True)
    of_run_id: Mapped[int] = mapped_column(Integer, index=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class RollbackOf:
    of_run_id: int
    requested_by: str


def rollback_of(session: Session, run_id: int) -> RollbackOf | None:
    """The run ``run_id`` rolls back later, or None for an ordinary run."""
    row = session.get(LaterRollback, run_id)
    return None if row is None else RollbackOf(row.of_run_id, row.requested_by)


def kinds(session: Session, run_ids: list[int]) -> dict[int, RollbackOf]:
    """For a listing: the later rollbacks among ``run_ids``."""
    if not run_ids:
        return {}
    rows = session.scalars(select(LaterRollback).where(LaterRollback.run_id.in_(run_ids)))
    return {r.run_id: RollbackOf(r.of_run_id, r.requested_by) for r in rows}


def annotate(session: Session, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run dicts (RunSummary.to_dict) with ``kind`` ("update", or "rollback of run N"),
    ``rollback_of`` and ``requested_by`` (who asked for a later rollback)."""
    found = kinds(session, [r["id"] for r in runs])
    for r in runs:
        of = found.get(r["id"])
        r["kind"] = f"rollback of run {of.of_run_id}" if of else "update"
        r["rollback_of"], r["requested_by"] = (of.of_run_id, of.requested_by) if of else (None, None)
    return runs


def target_run(session: Session, run_id: int) -> WorkflowRun:
    """The run to roll back, or RollbackRefused saying why it cannot be."""
    run = session.get(WorkflowRun, run_id)
    if run is None:
        raise RollbackRefused(f"no run with id {run_id}")
    if session.get(LaterRollback, run_id) is not None:
        raise RollbackRefused(f"run {run_id} is itself a later rollback; it cannot be rolled back")
    if run.state != "SUCCEEDED" or run.dry_run:
        what = "a dry run" if run.dry_run else f"ended {run.state}"
        raise RollbackRefused(f"run {run_id} {what}: only a succeeded run's backup is restored later")
    undone = _undone_by(session, run_id)
    if undone is not None:
        raise RollbackRefused(f"run {run_id} was rolled back already by run {undone}")
    changed = _changed_since(session, run)
    if changed is not None:
        raise RollbackRefused(f"run {changed.id} ({changed.playbook}) changed {run.host} after run {run_id}: "
                              f"roll back run {changed.id} first, or restore by hand")
    return run


def _undone_by(session: Session, run_id: int) -> int | None:
    """The later rollback that restored ``run_id``'s backup, if one did."""
    return session.scalars(select(WorkflowRun.id).join(LaterRollback, LaterRollback.run_id == WorkflowRun.id)
                           .where(LaterRollback.of_run_id == run_id,
                                  WorkflowRun.state == "ROLLED_BACK")).first()


def _changed_since(session: Session, run: WorkflowRun) -> WorkflowRun | None:
    """A later succeeded real run on the host that no later rollback has undone."""
    later = session.scalars(select(WorkflowRun).where(
        WorkflowRun.host == run.host, WorkflowRun.id > run.id, WorkflowRun.state == "SUCCEEDED",
        WorkflowRun.dry_run.is_(False)).order_by(WorkflowRun.id.desc()))
    for other in later:
        if session.get(LaterRollback, other.id) is None and _undone_by(session, other.id) is None:
            return other
    return None


def create(sessions: SessionFactory, *, of_run: int, playbook: Playbook, actor: str, now: float) -> int:
    """Create the rollback run (lease taken; RollbackRefused / HostBusyError / HostQuarantinedError)."""
    if playbook.rollback_later is None:
        raise RollbackRefused(f"playbook {playbook.name} declares no rollback_later: its runs cannot be "
                              "rolled back later (restore its backup by hand)")
    with sessions() as s:
        earlier = target_run(s, of_run)
        host, variables, captured = earlier.host, dict(earlier.variables), dict(earlier.captured)

    def record(session: Session, run: WorkflowRun) -> None:
        run.captured = captured
        session.add(LaterRollback(run_id=run.id, of_run_id=of_run, requested_by=actor, requested_at=now))

    return store.create_run(sessions, host=host, playbook=playbook.name, playbook_path=playbook.source,
                            variables=variables, dry_run=False, now=now, with_run=record)
