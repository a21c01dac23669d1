"""Release holds: a release that rolled back anywhere is held for the whole fleet until an operator
releases it (DESIGN.md "Release").

A release is named per playbook by the playbook's ``release:`` keys (playbook.ReleaseKey): the
``.cfu`` version for a 1C configuration update, the planned ``name=old>new`` set for packages, the
module targets (or the versions reached) for Bitrix modules. Its identity is (playbook name, key);
the key's words are sorted, so the same set in another order is the same release.

The engine asks :func:`held` once a key is known (after preflight: the run ends SKIPPED, nothing
changed; after the update: the run rolls back with reason "release held") and calls :func:`hold`
when a run ends ROLLED_BACK or QUARANTINED. Operators list, hold and release with
``boxkeeper releases`` / ``/api/v1/releases``; every hold records who held and released it, and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from controller.store.base import Base
from controller.workflows.playbook import Phase, Playbook
from controller.workflows.template import Value, render_plain

HELD, RELEASED = "held", "released"


class ReleaseHold(Base):
    """A held (or formerly held) release. At most one row per (playbook, release) is ``held``."""

    __tablename__ = "release_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    playbook: Mapped[str] = mapped_column(String(200), index=True)
    release: Mapped[str] = mapped_column(Text)
    #: held | released
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: the run that rolled it back (None: held by hand)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(100), nullable=True)
    held_by: Mapped[str] = mapped_column(String(100))
    held_at: Mapped[float] = mapped_column(Float)
    released_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    released_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class UnknownHoldError(LookupError):
    """No hold with that id (or it is released already)."""


@dataclass(frozen=True)
class Hold:
    id: int
    playbook: str
    release: str
    state: str
    reason: str
    run_id: int | None
    host: str | None
    held_by: str
    held_at: float
    released_by: str | None
    released_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hold(row: ReleaseHold) -> Hold:
    return Hold(row.id, row.playbook, row.release, row.state, row.reason, row.run_id, row.host, row.held_by,
                row.held_at, row.released_by, row.released_at)


def normalize(key: str) -> str:
    """One spelling per release: the words sorted, duplicates dropped."""
    return " ".join(sorted(set(key.split())))


def release_key(playbook: Playbook, values: Mapping[str, Value], after: Phase | None = None) -> str:
    """The run's release, from the first of the playbook's keys (known ``after`` that phase, or any
    when None) that renders non-empty and not ignored; "" when none does (yet)."""
    for k in playbook.release:
        if after is not None and k.after is not after:
            continue
        try:
            text = normalize(render_plain(k.key, values))
        except KeyError:  # a captured value the run never reached
            continue
        if text and text not in k.ignore:
            return text
    return ""


def held(session: Session, playbook: str, release: str) -> Hold | None:
    row = session.scalars(select(ReleaseHold).where(ReleaseHold.playbook == playbook,
                                                    ReleaseHold.release == normalize(release),
                                                    ReleaseHold.state == HELD)).first()
    return None if row is None else _hold(row)


def hold(session: Session, *, playbook: str, release: str, actor: str, now: float, reason: str = "",
         run_id: int | None = None, host: str | None = None) -> tuple[Hold, bool]:
    """Hold the release (the hold, and whether it is new; an existing hold is kept as it is)."""
    key = normalize(release)
    if not key:
        raise ValueError("an empty release cannot be held")
    found = held(session, playbook, key)
    if found is not None:
        return found, False
    row = ReleaseHold(playbook=playbook, release=key, state=HELD, reason=reason, run_id=run_id, host=host,
                      held_by=actor, held_at=now)
    session.add(row)
    session.flush()
    return _hold(row), True


def release(session: Session, hold_id: int, *, actor: str, now: float) -> Hold:
    """Allow a held release again (UnknownHoldError when there is no such held release)."""
    row = session.get(ReleaseHold, hold_id)
    if row is None or row.state != HELD:
        raise UnknownHoldError(f"no held release with id {hold_id}")
    row.state, row.released_by, row.released_at = RELEASED, actor, now
    return _hold(row)


def list_holds(session: Session, *, include_released: bool = False) -> list[Hold]:
    stmt = select(ReleaseHold)
    if not include_released:
        stmt = stmt.where(ReleaseHold.state == HELD)
    return [_hold(r) for r in session.scalars(stmt.order_by(ReleaseHold.id.desc()))]
