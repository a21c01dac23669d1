"""Tables of the update workflows (Alembic revision 0003), on the controller's one ``Base``.

::

    workflow_runs 1─n workflow_run_steps     (the run's timeline: transitions and steps, redacted)
    workflow_host_leases                      (one row per host while a run holds it: one run per host)
    workflow_host_quarantine                  (a row = no automation on that host until unquarantined)

Hosts are referred to by name (the controller config's host name), so a run can be recorded for a
host that has no agent yet. Every text column holds redacted text only (secrets replaced by ***).
Times are unix seconds (float), controller clock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(100), index=True)
    playbook: Mapped[str] = mapped_column(String(200))
    playbook_path: Mapped[str] = mapped_column(String(1000))
    #: resolved non-secret variable values (secret ones are not stored)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: written into the lock file on the host: unique across controllers and stores
    lock_token: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(32), index=True)
    #: "running" while the state's action runs, "done" after it
    phase_status: Mapped[str] = mapped_column(String(16), default="running")
    #: the decided final state while the ``finally`` phase and the unlock run
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    backup_started: Mapped[bool] = mapped_column(Boolean, default=False)
    #: non-secret captured values (versions before/after, backup location ...)
    captured: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failed_step: Mapped[str | None] = mapped_column(String(300), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: who started it: ``cli:<login>``, the API operator's name, ``window:<name>`` ("" before 0005)
    started_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: an operator's abort (revision 0010): who asked and when, from any process; ``aborted_at`` is
    #: set when the engine acted on it at a step boundary (controller/workflows/aborts.py)
    abort_requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    abort_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    aborted_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class WorkflowRunStep(Base):
    __tablename__ = "workflow_run_steps"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    #: "transition" (name = "A → B") or a step kind (run, put, get, http, testinfra, wait_healthy)
    kind: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(300))
    #: running | ok | failed | error (could not reach the host)
    status: Mapped[str] = mapped_column(String(16))
    command: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    stdout_tail: Mapped[str] = mapped_column(Text, default="")
    stderr_tail: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class HostLease(Base):
    __tablename__ = "workflow_host_leases"

    host: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    acquired_at: Mapped[float] = mapped_column(Float)


class HostQuarantine(Base):
    __tablename__ = "workflow_host_quarantine"

    host: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[float] = mapped_column(Float)


class UpdateWindow(Base):
    """An agreed update window: a cron expression (5 fields) in a time zone, and how long it lasts."""

    __tablename__ = "workflow_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: the hosts it covers: one host name, or every host of a client (``client:<name>``)
    target: Mapped[str] = mapped_column(String(200))
    playbook: Mapped[str] = mapped_column(String(1000))
    cron: Mapped[str] = mapped_column(String(100))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class WindowOccurrence(Base):
    """One scheduled start of a window: started (with its runs), or missed/skipped and why."""

    __tablename__ = "workflow_window_occurrences"
    __table_args__ = (UniqueConstraint("window_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("workflow_windows.id", ondelete="CASCADE"), index=True)
    scheduled_for: Mapped[float] = mapped_column(Float)
    #: started | missed | done | halted
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    run_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    recorded_at: Mapped[float] = mapped_column(Float)
