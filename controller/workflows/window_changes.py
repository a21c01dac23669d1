"""Who changed an update window, and how: one audit row per add, edit, disable, enable and delete.

Rows keep the window's name and id without a foreign key, so the record of a deleted window stays.
``changes`` maps each edited field to ``[before, after]``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from controller.store.base import Base


class WindowChange(Base):
    __tablename__ = "workflow_window_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(Integer, index=True)
    window_name: Mapped[str] = mapped_column(String(100))
    #: add | edit | disable | enable | delete
    action: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[float] = mapped_column(Float)


def record(session: Session, *, window_id: int, name: str, action: str, actor: str, now: float,
           changes: dict[str, Any] | None = None) -> None:
    session.add(WindowChange(window_id=window_id, window_name=name, action=action, changes=changes or {},
                             actor=actor, at=now))


def history(session: Session, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; only the window called ``name`` when given."""
    stmt = select(WindowChange)
    if name is not None:
        stmt = stmt.where(WindowChange.window_name == name)
    rows = session.scalars(stmt.order_by(WindowChange.id.desc()).limit(limit))
    return [{"window": r.window_name, "window_id": r.window_id, "action": r.action, "changes": r.changes,
             "actor": r.actor, "at": r.at} for r in rows]
