"""Muting a host's notifications: config maintenance windows and ``host_mutes`` rows.

``mute_host`` is how an update run (or an operator) says "this host is being worked on until …";
incidents are still recorded, their notifications are withheld ("suppressed: maintenance …" in the
timeline) and sent when the mute ends if the incident is still open.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.incidents.models import HostMute
from controller.notify.config import MaintenanceWindow
from controller.notify.maintenance import active_window
from controller.store.models import Host


def mute_host(session: Session, *, host: str, until: float, reason: str, actor: str | None = None,
              now: float | None = None) -> HostMute:
    """Mute the host's notifications until ``until`` (unix seconds)."""
    host_row = session.scalars(select(Host).where(Host.name == host)).first()
    if host_row is None:
        raise LookupError(f"no host {host!r}")
    mute = HostMute(host_id=host_row.id, until=until, reason=reason, created_by=actor,
                    created_at=time.time() if now is None else now)
    session.add(mute)
    session.flush()
    return mute


def unmute_host(session: Session, *, host: str) -> int:
    """End every mute of the host now; the number of mutes removed."""
    host_row = session.scalars(select(Host).where(Host.name == host)).first()
    if host_row is None:
        return 0
    result = session.execute(delete(HostMute).where(HostMute.host_id == host_row.id))
    return int(getattr(result, "rowcount", 0) or 0)


def active_mutes(session: Session, now: float) -> dict[int, HostMute]:
    """host id → the longest-running active mute."""
    rows = session.scalars(select(HostMute).where(HostMute.until > now).order_by(HostMute.until)).all()
    return {row.host_id: row for row in rows}


def is_muted(
    session: Session,
    *,
    host: str | None,
    client: str | None,
    now: float,
    windows: tuple[MaintenanceWindow, ...] = (),
    host_id: int | None = None,
) -> str | None:
    """Why the host's notifications are muted right now ("maintenance: nightly"), or None."""
    if host is None:
        return None
    window = active_window(windows, client=client, host=host, now=now)
    if window is not None:
        return f"maintenance window {window.name}"
    stmt = select(HostMute).where(HostMute.until > now)
    if host_id is not None:
        stmt = stmt.where(HostMute.host_id == host_id)
    else:
        stmt = stmt.join(Host, Host.id == HostMute.host_id).where(Host.name == host)
    mute = session.scalars(stmt.order_by(HostMute.until.desc())).first()
    return None if mute is None else f"muted: {mute.reason}"
