"""Read the fleet from the store into :class:`~controller.detection.classify.HostView` values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controller.detection.classify import HostView
from controller.detection.config import DetectionConfig
from controller.detection.liveness import is_silent, silent_for
from controller.detection.probes import ProbeResult, ProbeTarget
from controller.store.models import CheckState, Client, Host, HostState


@dataclass(frozen=True)
class CheckSnapshot:
    name: str
    status: int
    hard: bool
    flapping: bool
    summary: str


@dataclass(frozen=True)
class HostRecord:
    """One host as the monitor sees it before probing."""

    host_id: int
    host: str
    client: str
    reported: bool
    silent: bool
    silent_for: float | None
    targets: tuple[ProbeTarget, ...]
    probes_disabled: bool
    checks: tuple[CheckSnapshot, ...]

    def view(self, probes: tuple[ProbeResult, ...] | None) -> HostView:
        return HostView(
            host=self.host, client=self.client, reported=self.reported, silent=self.silent,
            silent_for=self.silent_for, probes=probes if self.targets else (), checks=self.checks,
            probes_disabled=self.probes_disabled,
        )


def probe_targets(portal_url: str | None, ssh_address: str | None) -> tuple[ProbeTarget, ...]:
    targets = []
    if ssh_address:
        targets.append(ProbeTarget("ssh", ssh_address))
    if portal_url:
        targets.append(ProbeTarget("portal", portal_url))
    return tuple(targets)


def load_fleet(
    session: Session,
    cfg: DetectionConfig,
    now: float,
    *,
    only: Iterable[str] | None = None,
    config_targets: dict[str, tuple[str | None, str | None]] | None = None,
) -> list[HostRecord]:
    """Every host (or those in ``only``), with liveness and the checks that are not plain OK.

    Probe targets come from the host's row (``portal_url``, ``ssh_address``), else from the config
    (``config_targets``: host → (portal_url, "host:port")).
    """
    stmt = select(Host, Client.name, HostState).join(Client, Client.id == Host.client_id).outerjoin(
        HostState, HostState.host_id == Host.id
    )
    names = None if only is None else list(only)
    if names is not None:
        stmt = stmt.where(Host.name.in_(names))
    rows = session.execute(stmt.order_by(Host.id)).all()
    if not rows:
        return []
    ids = [host.id for host, _, _ in rows]
    checks: dict[int, list[CheckSnapshot]] = {}
    check_stmt = select(CheckState).where(
        or_(CheckState.status != 0, CheckState.flapping.is_(True), CheckState.hard.is_(False))
    )
    if names is not None:
        check_stmt = check_stmt.where(CheckState.host_id.in_(ids))
    for c in session.scalars(check_stmt):
        snapshot = CheckSnapshot(c.name, c.status, c.hard, c.flapping, c.summary)
        checks.setdefault(c.host_id, []).append(snapshot)
    records = []
    for host, client_name, state in rows:
        per_host = cfg.for_host(host.name)
        portal, ssh = host.portal_url, host.ssh_address
        if config_targets and host.name in config_targets:
            portal = portal or config_targets[host.name][0]
            ssh = ssh or config_targets[host.name][1]
        records.append(HostRecord(
            host_id=host.id, host=host.name, client=client_name,
            reported=state is not None and state.last_report_at is not None,
            silent=is_silent(state, now, cfg, host.name), silent_for=silent_for(state, now),
            targets=probe_targets(portal, ssh) if per_host.probes else (),
            probes_disabled=not per_host.probes,
            checks=tuple(checks.get(host.id, ())),
        ))
    return records
