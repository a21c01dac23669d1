"""The incidents side's tables (all on the shared ``Base``; migration ``0002``).

::

    incidents 1─n incident_events     the timeline, kept forever
    incidents 1─n notifications       the outbox: one row per (incident, channel, event)
    hosts     1─n silences            "mute this host's notifications until …", each with an owner

An incident keeps the host and client *names* too, so its history survives a deleted host.
At most one incident per ``dedup_key`` is not resolved: a partial unique index
(``WHERE status != 'resolved'``) enforces it on SQLite and PostgreSQL alike.
Times are unix seconds (float), controller clock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)
PENDING, SENT, FAILED = "pending", "sent", "failed"


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_dedup_key", "dedup_key", unique=True,
            sqlite_where=text("status != 'resolved'"), postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_incidents_status", "status"),
        Index("ix_incidents_host_id", "host_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), nullable=True
    )
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True)
    client_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    host_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(400))
    cause: Mapped[str] = mapped_column(String(50))  # unreachable, agent_down, check, flapping, release …
    severity: Mapped[str] = mapped_column(String(16))  # critical, warning, info
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    acknowledged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ack_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: why notifications are withheld right now (inhibited by a host-level incident, maintenance …)
    withheld: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: set on every change; the monitor's pass (re)computes the notifications and clears it
    needs_sync: Mapped[bool] = mapped_column(Boolean, default=True)


class IncidentEvent(Base):
    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident_id_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    #: opened, escalated, severity, suppressed, unsuppressed, notified, notify_failed,
    #: acknowledged, ack_expired, note, resolved, reopened
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class Notification(Base):
    """One outbox row: deliver ``event`` of ``incident_id`` to ``channel``."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notifications_incident_id_channel", "incident_id", "channel"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(16))  # firing, repeat, resolved
    channel: Mapped[str] = mapped_column(String(100))
    #: never enqueued twice: "<incident>:<channel>:<event>:<n>"; also the receiver's idempotency key
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)


#: who owns a silence: an operator (``maintenance mute``), an update run, or an update window
OWNER_KINDS = ("operator", "run", "window")


class Silence(Base):
    """The host's notifications are muted until ``until``. Ending a run or a window removes only
    the silences it owns (``owner_kind`` + ``owner_ref``); an operator's stay until they lapse or
    the operator lifts them."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_owner", "owner_kind", "owner_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    until: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(300))
    owner_kind: Mapped[str] = mapped_column(String(16))  # operator | run | window
    owner_ref: Mapped[str] = mapped_column(String(100))  # operator name, run id, window id
    created_at: Mapped[float] = mapped_column(Float)
