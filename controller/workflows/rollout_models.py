"""Tables of rollouts (Alembic revision 0005_rollouts), on the controller's one ``Base``.

::

    rollouts 1─n rollout_hosts ─0..1→ workflow_runs (by id)     (one row per host, in rollout order)

A rollout is one playbook over many hosts: a canary, then batches, a failure budget. Its runs are
ordinary runs (``workflow_runs``); ``rollout_hosts`` says, per host, which batch it belongs to, its
run (once started) and what became of it. ``control`` is how another process (``boxkeeper rollouts
pause|resume|abort``, the API) asks the driving process to pause or abort; the driver reads it
between runs. Variables are not stored here (they may hold secrets): each run stores its own
non-secret ones. Times are unix seconds (float), controller clock.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base


class Rollout(Base):
    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playbook: Mapped[str] = mapped_column(String(1000))
    #: RUNNING, PAUSED, SUCCEEDED, FINISHED (every host tried, failures within the budget),
    #: STOPPED (failure budget spent), ABORTED (by an operator)
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: None, "pause" or "abort": asked by an operator, honoured by the driver between runs
    control: Mapped[str | None] = mapped_column(String(16), nullable=True)
    canary: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int] = mapped_column(Integer)
    max_failures: Mapped[int] = mapped_column(Integer)
    #: ``cli:<login>``, the API operator's name, ``window:<name>``
    started_by: Mapped[str] = mapped_column(String(200))
    #: the client every host belongs to, when they all belong to one (the incident is routed to it)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RolloutHost(Base):
    __tablename__ = "rollout_hosts"
    __table_args__ = (UniqueConstraint("rollout_id", "host"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(100))
    #: 0 = the canary, then 1, 2 ...
    batch: Mapped[int] = mapped_column(Integer)
    #: the host's run (``workflow_runs.id``; no foreign key: runs and rollouts are pruned apart)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: PENDING, RUNNING, the run's final state, REFUSED, NOT_STARTED (a gate said no),
    #: NOT_ATTEMPTED (the rollout stopped or was aborted first)
    outcome: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
