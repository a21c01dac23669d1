"""The ``wait_healthy`` step's view of a host: what its agent last reported (the store's report tables)."""

from __future__ import annotations

from sqlalchemy import select

from controller.store.db import Database
from controller.store.models import CheckState, Host, HostState
from controller.workflows.steps.base import HealthView

CRITICAL = 2


class StoreHealth:
    """Reads ``host_states.last_report_at`` and the hard CRITICAL ``check_states`` of a host."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def latest(self, host: str) -> HealthView:
        with self.db.read_session() as s:
            host_id = s.scalar(select(Host.id).where(Host.name == host))
            if host_id is None:
                return HealthView(None)
            state = s.get(HostState, host_id)
            critical = s.scalars(select(CheckState.name).where(
                CheckState.host_id == host_id, CheckState.hard.is_(True), CheckState.status == CRITICAL))
            return HealthView(state.last_report_at if state else None, tuple(sorted(critical)))
