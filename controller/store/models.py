"""The core tables: inventory (clients, hosts, agent tokens), reports and fleet state.

::

    clients 1─n hosts 1─n agent_tokens        (token hashes; revoked_at set = no longer valid)
                hosts 1─n reports              (accepted reports, unique (host_id, seq); kept for
                                               retention.raw_reports, then summarised: store/history.py)
                hosts 1─n check_states         (latest state of each check, one row per check)
                hosts 1─n state_changes        (history: a row when status or hard/soft changed)
                hosts 1─1 host_states          (last report time by the controller clock, facts, samples)

Times are unix seconds (float). ``host_states.last_report_at`` is the controller's clock, never the
agent's, so liveness does not depend on the box's clock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controller.store.base import Base

#: BIGINT on PostgreSQL, INTEGER (a rowid alias, so it autoincrements) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[float] = mapped_column(Float)

    hosts: Mapped[list[Host]] = relationship(back_populates="client")


class Host(Base):
    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    portal_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    ssh_address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)

    client: Mapped[Client] = relationship(back_populates="hosts")
    state: Mapped[HostState | None] = relationship(back_populates="host", uselist=False)


class AgentToken(Base):
    __tablename__ = "agent_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("host_id", "seq", name="uq_reports_host_id_seq"),
        Index("ix_reports_host_id_received_at", "host_id", "received_at"),  # the pruning's walk
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    sent_at: Mapped[float] = mapped_column(Float)
    body: Mapped[str] = mapped_column(Text)  # the validated report without its samples (JSON)


class CheckState(Base):
    __tablename__ = "check_states"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    hard: Mapped[bool] = mapped_column(Boolean)
    flapping: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    perfdata: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_change: Mapped[float | None] = mapped_column(Float, nullable=True)  # agent clock
    updated_at: Mapped[float] = mapped_column(Float)  # controller clock
    report_seq: Mapped[int] = mapped_column(BigInteger)


class StateChange(Base):
    __tablename__ = "state_changes"
    __table_args__ = (Index("ix_state_changes_host_id_at", "host_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    check_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)  # controller clock
    report_seq: Mapped[int] = mapped_column(BigInteger)
    old_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_status: Mapped[int] = mapped_column(Integer)
    old_hard: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    new_hard: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)


class HostState(Base):
    __tablename__ = "host_states"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    last_report_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # controller clock
    last_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # agent clock
    push_interval_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    agent_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reports_total: Mapped[int] = mapped_column(BigInteger, default=0)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Deferred: loaded only when read (the fleet metrics undefer it), not on every state query.
    samples: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, deferred=True)

    host: Mapped[Host] = relationship(back_populates="state")
