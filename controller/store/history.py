"""History summaries: what is left of the raw reports once they are pruned (migration ``0005``).

::

    hosts 1─n check_hours    per host, check and UTC hour: seconds in each status, status changes

One row per (host, hour, check). ``hour`` is the unix time of the hour's start (a multiple of 3600,
controller clock). The seconds are whole seconds the check was seen OK / WARNING / CRITICAL /
UNKNOWN in the host's reports (:mod:`controller.retention` says how a report's time is counted);
``changes`` counts the status changes of the check's history (``state_changes``) in that hour. An
hour that still has raw reports (newer than the raw retention) may be summarised only in part:
the rows are complete for hours before ``now - retention.raw_reports``. Kept for
``retention.summaries`` (default 400 days), then deleted.

On SQLite the table has no rowid (the primary key is the table: no second copy of the key in an
index); on both databases the key's order serves "one host over a time range".
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controller.store.base import Base


class CheckHour(Base):
    __tablename__ = "check_hours"
    __table_args__ = ({"sqlite_with_rowid": False},)

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    ok_seconds: Mapped[int] = mapped_column(Integer, default=0)
    warning_seconds: Mapped[int] = mapped_column(Integer, default=0)
    critical_seconds: Mapped[int] = mapped_column(Integer, default=0)
    unknown_seconds: Mapped[int] = mapped_column(Integer, default=0)
    changes: Mapped[int] = mapped_column(Integer, default=0)
