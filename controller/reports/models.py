"""The ``worklog`` table (Alembic revision ``0007_worklog``): minutes of work done for a client.

::

    clients 1─n worklog      an entry: who (operator), when, how long, what; optionally about one
                             host, one update run or one incident

Entries are never pruned (the monthly report bills from them, kept at least 13 months; they are a
few rows a day). The client's and host's *names* are kept too, so an entry outlives a removed host.
Times are unix seconds (float), controller clock.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base


class WorkLogEntry(Base):
    __tablename__ = "worklog"
    __table_args__ = (Index("ix_worklog_client_id_at", "client_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"),
                                                  nullable=True)
    client_name: Mapped[str] = mapped_column(String(100))
    host_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    minutes: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    #: who did the work: ``cli:<login>`` or the API operator's name
    actor: Mapped[str] = mapped_column(String(100))
    #: when it was recorded (the report's month is taken from this, in the client's time zone)
    at: Mapped[float] = mapped_column(Float)
