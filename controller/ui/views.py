"""What each page shows, read from the store: plain values for the templates (no HTML here).

Every reader takes the signed-in :class:`~controller.ui.access.Identity` and leaves out what it may
not see (``access.sees``), so a client-scoped identity never gets another client's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.alerting import queries
from controller.alerting.models import Incident
from controller.config import ControllerConfig
from controller.errors import ConfigError
from controller.fleet import STATUS_NAMES, HostView, load_fleet
from controller.store import raw
from controller.store.models import Host, Report, StateChange
from controller.ui.access import Identity, can, sees
from controller.workflows import aborts
from controller.workflows import rollouts as rollout_store
from controller.workflows import runs as run_store
from controller.workflows.errors import UnknownRolloutError, UnknownRunError
from controller.workflows.loader import load_playbook
from controller.workflows.models import UpdateWindow, WorkflowRun
from controller.workflows.rollouts import RolloutSummary
from controller.workflows.state import TERMINAL
from controller.workflows.template import render_plain
from controller.workflows.windows import schedule_of

HOST_STATES = ("ok", "warning", "critical", "agent_down", "unreachable", "unknown", "maintenance")
SPARK_REPORTS = 60  # how many recent reports the sparklines are drawn from


@dataclass(frozen=True)
class FleetFilter:
    client: str = ""
    state: str = ""
    q: str = ""

    def keeps(self, view: HostView) -> bool:
        return ((not self.client or view.client == self.client)
                and (not self.state or view.state == self.state)
                and (not self.q or self.q.lower() in view.host.lower()))


@dataclass(frozen=True)
class FleetHost:
    view: HostView
    failing: tuple[str, ...]
    next_window: float | None
    next_window_name: str | None


@dataclass
class FleetClient:
    name: str
    hosts: list[FleetHost] = field(default_factory=list)


def _windows_of(session: Session) -> list[UpdateWindow]:
    return list(session.scalars(select(UpdateWindow).where(UpdateWindow.enabled.is_(True))))


def next_start(window: UpdateWindow, now: float) -> float | None:
    try:
        schedule = schedule_of(window.cron, window.timezone)
    except ConfigError:
        return None
    return schedule.next_after(datetime.fromtimestamp(now, UTC)).timestamp()


def _next_window(windows: list[UpdateWindow], host: str, client: str,
                 now: float) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    for w in windows:
        if w.target not in (host, f"client:{client}"):
            continue
        at = next_start(w, now)
        if at is not None and (best[0] is None or at < best[0]):
            best = (at, w.name)
    return best


def fleet(session: Session, cfg: ControllerConfig, now: float, who: Identity,
          flt: FleetFilter) -> tuple[list[FleetClient], list[str]]:
    """(clients with their hosts after the filter, every client name the identity sees)."""
    views = [v for v in load_fleet(session, cfg.detection, cfg.maintenance, now) if sees(who, v.client)]
    windows = _windows_of(session)
    clients: dict[str, FleetClient] = {}
    for v in views:
        if not flt.keeps(v):
            continue
        failing = tuple(c.name for c in v.checks if c.status != 0)
        at, name = _next_window(windows, v.host, v.client, now)
        clients.setdefault(v.client, FleetClient(v.client)).hosts.append(FleetHost(v, failing, at, name))
    return list(clients.values()), sorted({v.client for v in views})


@dataclass(frozen=True)
class Spark:
    name: str
    points: str  # SVG polyline points, 0..100 x 0..24
    last: str


def _series(bodies: list[raw.StoredReport]) -> dict[str, list[float]]:
    """The sparklines' values, oldest first, from the stored reports' ``gauges``
    (:func:`controller.store.raw.gauges`; older rows have none)."""
    out: dict[str, list[float]] = {"load1": [], "memory": [], "disk": []}
    for body in bodies:
        for name, values in out.items():
            if name in body.gauges:
                values.append(body.gauges[name])
    return out


def sparkline(name: str, values: list[float], unit: str) -> Spark | None:
    if not values:
        return None
    top = max(max(values), 1e-9) if unit != "%" else 100.0
    n = len(values)
    pts = " ".join(f"{(i * 100 / max(n - 1, 1)):.1f},{24 - 22 * v / top - 1:.1f}"
                   for i, v in enumerate(values))
    return Spark(name, pts, f"{values[-1]:.1f}{unit}" if unit == "%" else f"{values[-1]:.2f}")


@dataclass(frozen=True)
class HostPage:
    view: HostView
    changes: dict[str, list[StateChange]]
    reports: list[Report]
    sparks: list[Spark]
    incidents: list[Incident]
    runs: list[WorkflowRun]


def host_page(session: Session, cfg: ControllerConfig, now: float, who: Identity,
              name: str) -> HostPage | None:
    views = load_fleet(session, cfg.detection, cfg.maintenance, now, host=name)
    if not views or not sees(who, views[0].client):
        return None
    host_id = session.scalar(select(Host.id).where(Host.name == name))
    changes: dict[str, list[StateChange]] = {}
    for c in session.scalars(select(StateChange).where(StateChange.host_id == host_id)
                             .order_by(StateChange.at.desc(), StateChange.id.desc()).limit(300)):
        changes.setdefault(c.check_name, []).append(c)
    reports = list(session.scalars(select(Report).where(Report.host_id == host_id)
                                   .order_by(Report.seq.desc()).limit(SPARK_REPORTS)))
    bodies = []
    for r in reversed(reports):
        try:
            bodies.append(raw.DECODER.decode(r.body))
        except msgspec.DecodeError:
            continue
    series = _series(bodies)
    sparks = [s for s in (sparkline("load1", series["load1"], ""), sparkline("memory", series["memory"], "%"),
                          sparkline("disk", series["disk"], "%")) if s is not None]
    incidents = queries.list_incidents(session, queries.IncidentFilter(host=name, limit=20))
    runs = list(session.scalars(select(WorkflowRun).where(WorkflowRun.host == name)
                                .order_by(WorkflowRun.id.desc()).limit(20)))
    return HostPage(views[0], changes, reports[:10], sparks, incidents, runs)


def incidents(session: Session, who: Identity, *, open_only: bool, client: str, host: str) -> list[Incident]:
    flt = queries.IncidentFilter(open_only=open_only, client=client or None, host=host or None, limit=300)
    return [i for i in queries.list_incidents(session, flt) if sees(who, i.client_name)]


def incident(session: Session, who: Identity, incident_id: int) -> tuple[Incident, list[Any]] | None:
    row = session.get(Incident, incident_id)
    if row is None or not sees(who, row.client_name):
        return None
    return row, queries.timeline(session, incident_id)


def client_of_host(cfg: ControllerConfig, host: str) -> str | None:
    found = cfg.host(host)
    return None if found is None else found[0].name


def client_of_target(cfg: ControllerConfig, target: str) -> str | None:
    """The client of a window's target (``client:NAME`` or a host name); None: no known client."""
    return target.removeprefix("client:") if target.startswith("client:") else client_of_host(cfg, target)


def rollout_clients(cfg: ControllerConfig, rollout: RolloutSummary) -> set[str | None]:
    """The clients of a rollout's hosts (None for a host no longer in the config)."""
    return {client_of_host(cfg, h.host) for h in rollout.hosts}


def rollouts(session: Session, cfg: ControllerConfig, who: Identity, limit: int = 50) -> list[RolloutSummary]:
    """The last rollouts ``who`` sees: those whose hosts are all of clients ``who`` sees (as the API)."""
    return [r for r in rollout_store.list_rollouts(session, limit)
            if all(sees(who, c) for c in rollout_clients(cfg, r))]


def rollout(session: Session, cfg: ControllerConfig, who: Identity, rollout_id: int) -> RolloutSummary | None:
    try:
        found = rollout_store.summary(session, rollout_id)
    except UnknownRolloutError:
        return None
    return found if all(sees(who, c) for c in rollout_clients(cfg, found)) else None


def runs(session: Session, cfg: ControllerConfig, who: Identity, limit: int = 100) -> list[WorkflowRun]:
    rows = session.scalars(select(WorkflowRun).order_by(WorkflowRun.id.desc()).limit(limit))
    return [r for r in rows if sees(who, client_of_host(cfg, r.host))]


@dataclass(frozen=True)
class RunPage:
    run: run_store.RunSummary
    finished: bool
    backup_location: str | None
    may_abort: bool = False  # going, not rolling back, and the visitor may abort runs of its client


def run_page(session: Session, cfg: ControllerConfig, who: Identity, run_id: int) -> RunPage | None:
    try:
        summary = run_store.summary(session, run_id)
    except UnknownRunError:
        return None
    if not sees(who, client_of_host(cfg, summary.host)):
        return None
    row = run_store.get_run(session, run_id)
    finished = summary.state in {s.value for s in TERMINAL}
    may_abort = (not finished and row.outcome is None and summary.abort_requested_by is None
                 and summary.state in {s.value for s in aborts.ABORTABLE}
                 and can(who, "run.abort", client_of_host(cfg, summary.host)))
    return RunPage(summary, finished, backup_location(row) if row.backup_started else None, may_abort)


def backup_location(row: WorkflowRun) -> str | None:
    """The playbook's ``backup_location`` rendered with the run's stored values (as in its incidents);
    None when the playbook has none or cannot be read any more."""
    try:
        template = load_playbook(Path(row.playbook_path)).backup_location
    except (ConfigError, OSError):
        return None
    if not template:
        return None
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in row.variables.items()}
    values.update({"run_id": row.id, "host": row.host})
    values.update({f"captured.{k}": v for k, v in row.captured.items()})
    try:
        return render_plain(template, values)
    except KeyError:
        return template


def windows(session: Session, cfg: ControllerConfig, who: Identity,
            now: float) -> list[tuple[UpdateWindow, float | None, str | None]]:
    """(window, its next start or None when disabled, its client) of the windows ``who`` sees."""
    out = []
    for w in session.scalars(select(UpdateWindow).order_by(UpdateWindow.name)):
        client = client_of_target(cfg, w.target)
        if sees(who, client):
            out.append((w, next_start(w, now) if w.enabled else None, client))
    return out


def status_name(status: int | None) -> str:
    return "-" if status is None else STATUS_NAMES.get(status, "unknown")
