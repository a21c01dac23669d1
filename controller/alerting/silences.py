"""Silences: "mute this host's notifications until …", each owned by whoever made it.

An owner is an operator (``boxkeeper maintenance mute``), an update run (while it changes the
host) or an update window (while it works on its hosts). Ending something removes only the
silences it owns (:func:`lift`): the end of a window never lifts an operator's silence. While a
host is silenced (by a silence or by a maintenance window of the config) incidents are still
recorded; their notifications are withheld ("suppressed: …" in the timeline) and sent when the
silence ends if the incident is still open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.alerting.maintenance import MaintenanceWindow, active_window
from controller.alerting.models import Silence
from controller.store.models import Host


@dataclass(frozen=True)
class Owner:
    """Who made a silence: ``Owner("operator", "alice")``, ``Owner.run(42)``, ``Owner.window(3)``."""

    kind: str  # operator | run | window
    ref: str

    @classmethod
    def operator(cls, name: str) -> Owner:
        return cls("operator", name)

    @classmethod
    def run(cls, run_id: int) -> Owner:
        return cls("run", str(run_id))

    @classmethod
    def window(cls, window_id: int) -> Owner:
        return cls("window", str(window_id))

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


def silence(session: Session, *, host: str, until: float, reason: str, owner: Owner, now: float) -> Silence:
    """Silence the host's notifications until ``until`` (unix seconds). LookupError: unknown host."""
    host_row = session.scalars(select(Host).where(Host.name == host)).first()
    if host_row is None:
        raise LookupError(f"no host {host!r}")
    row = Silence(host_id=host_row.id, until=until, reason=reason, owner_kind=owner.kind, owner_ref=owner.ref,
                  created_at=now)
    session.add(row)
    session.flush()
    return row


def lift(session: Session, owner: Owner, *, host: str | None = None) -> int:
    """End the silences ``owner`` made (on ``host`` only, when given); the number ended."""
    stmt = delete(Silence).where(Silence.owner_kind == owner.kind, Silence.owner_ref == owner.ref)
    if host is not None:
        stmt = stmt.where(Silence.host_id.in_(select(Host.id).where(Host.name == host)))
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def lift_host(session: Session, host: str, *, kinds: tuple[str, ...] = ("operator",)) -> int:
    """End the host's silences of these owner kinds (an operator's ``unmute``); the number ended."""
    stmt = delete(Silence).where(Silence.owner_kind.in_(kinds),
                                 Silence.host_id.in_(select(Host.id).where(Host.name == host)))
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def active(session: Session, now: float) -> list[tuple[str, Silence]]:
    """(host name, silence) of every silence in force, soonest end first."""
    rows = session.execute(select(Host.name, Silence).join(Host, Host.id == Silence.host_id)
                           .where(Silence.until > now).order_by(Silence.until, Silence.id)).all()
    return [(name, row) for name, row in rows]


def is_muted(
    session: Session,
    *,
    host: str | None,
    client: str | None,
    now: float,
    windows: tuple[MaintenanceWindow, ...] = (),
    host_id: int | None = None,
    silences: Mapping[int, str] | None = None,
) -> str | None:
    """Why the host's notifications are muted right now ("maintenance window nightly"), or None.
    ``silences``: host id → reason of the silence in force, read once for many hosts."""
    if host is None:
        return None
    window = active_window(windows, client=client, host=host, now=now)
    if window is not None:
        return f"maintenance window {window.name}"
    if silences is not None and host_id is not None:
        reason = silences.get(host_id)
        return None if reason is None else f"muted: {reason}"
    stmt = select(Silence).where(Silence.until > now)
    if host_id is not None:
        stmt = stmt.where(Silence.host_id == host_id)
    else:
        stmt = stmt.join(Host, Host.id == Silence.host_id).where(Host.name == host)
    row = session.scalars(stmt.order_by(Silence.until.desc())).first()
    return None if row is None else f"muted: {row.reason}"
