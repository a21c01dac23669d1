"""The monthly client report, computed once from the stored history into a JSON-ready dict.

``build_report(session, client="acme", month="2026-11", windows=cfg.maintenance, now=time.time())``.
Every renderer (:mod:`controller.reports.render`) formats this dict and computes nothing of its
own, so html, md, csv and json carry the same figures. How each figure is computed:
docs/reports.md.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import MetaData, Table, and_, inspect, or_, select
from sqlalchemy.orm import Session

from controller.alerting.maintenance import MaintenanceWindow
from controller.alerting.models import Incident, IncidentEvent, Silence
from controller.errors import UnknownClientError
from controller.reports import worklog
from controller.reports.availability import Availability, Down, Planned, critical_spans, maintenance_spans
from controller.reports.period import Month, month_in
from controller.store.models import CheckState, Client, Host
from controller.workflows.models import UpdateWindow, WindowOccurrence, WorkflowRun

SCHEMA = "boxkeeper.report/1"
#: incident kinds that make a host down (DESIGN.md "Outage detection")
HOST_DOWN_KINDS = ("unreachable", "agent_down")
#: check types that are a portal (discovery names them portal, portal-<site>)
PORTAL_CHECK_TYPES = frozenset({"http"})
PORTAL_PREFIX = "portal"
#: check types that watch backups
BACKUP_CHECK_TYPES = frozenset({"bitrix_backup"})
#: playbooks that test backups rather than update anything
DRILL_PLAYBOOKS = frozenset({"bitrix-backup-drill"})
#: causes of incidents that say the backups are bad
BACKUP_CAUSES = frozenset({"backup_unrestorable"})
#: run states that passed BACKUP_VERIFY (a verified backup was taken)
BACKED_UP = frozenset({"SUCCEEDED", "ROLLED_BACK", "QUARANTINED"})
ROLLED_BACK_STATES = frozenset({"ROLLED_BACK", "QUARANTINED"})
#: run states that are no failure of what ran: an operator's abort before any change is neither a
#: success nor a failed drill or update (it is listed with its operator)
NOT_FAILED = frozenset({"SUCCEEDED", "ABORTED"})
#: timeline events not shown in the summary of an incident (counted instead)
QUIET_EVENTS = frozenset({"notified", "notify_failed", "suppressed", "unsuppressed"})
LONGEST = 5
TIMELINE_EVENTS = 12
WINDOW_SPAN_STATES = ("started", "done", "halted")
STATUS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
AVAILABILITY_RULE = (
    "availability = (period - downtime) / (period - planned downtime); downtime inside maintenance "
    "(maintenance windows, silences, update runs and update windows) is planned and leaves the "
    "denominator; downtime outside it counts fully"
)
HOLDS_NOTE = "release holds are not recorded by this controller yet: this section fills in once they are"
#: the table of release holds (``boxkeeper releases hold|release|list``, issue #17), read when present
HOLDS_TABLE = "release_holds"
HOLD_COLUMNS = ("id", "playbook", "release", "state", "reason", "run_id", "host", "held_by", "held_at",
                "released_by", "released_at")


def build_report(session: Session, *, client: str, month: str, now: float,
                 windows: Sequence[MaintenanceWindow] = ()) -> dict[str, Any]:
    """The report of ``client`` for ``month`` (``YYYY-MM``, in the client's time zone).
    UnknownClientError: no such client; BadMonthError: not a month."""
    row = session.scalars(select(Client).where(Client.name == client)).first()
    if row is None:
        raise UnknownClientError(f"no client {client!r}")
    m = month_in(month, row.timezone)
    as_of = min(now, m.end)
    hosts = list(session.scalars(select(Host).where(Host.client_id == row.id).order_by(Host.name)))
    ctx = _Context(session, m, as_of, row, hosts)
    ctx.load()
    availability_hosts, availability_portals = _availability(ctx, windows)
    return {
        "schema": SCHEMA,
        "client": row.name,
        "month": m.label,
        "timezone": m.timezone,
        "period": {"start": ctx.iso(m.start), "end": ctx.iso(m.end), "seconds": m.seconds,
                   "hours": m.seconds / 3600, "as_of": ctx.iso(as_of), "complete": now >= m.end},
        "generated_at": ctx.iso(now),
        "hosts": [h.name for h in hosts],
        "host_count": len(hosts),
        "availability": {"rule": AVAILABILITY_RULE, "hosts": availability_hosts,
                         "portals": availability_portals},
        "incidents": _incidents(ctx),
        "updates": _updates(ctx),
        "backups": _backups(ctx),
        "worklog": _worklog(ctx),
    }


class _Context:
    """The month's rows, read once."""

    def __init__(self, session: Session, m: Month, as_of: float, client: Client, hosts: list[Host]) -> None:
        self.session, self.m, self.as_of, self.client, self.hosts = session, m, as_of, client, hosts
        self.incidents: list[Incident] = []
        self.runs: list[WorkflowRun] = []
        self.silences: list[tuple[str, Silence]] = []
        self.occurrences: list[tuple[UpdateWindow, WindowOccurrence]] = []
        self.checks: list[CheckState] = []
        self._severity_events: dict[int, list[tuple[float, str, str]]] | None = None

    def iso(self, stamp: float | None) -> str | None:
        return None if stamp is None else self.m.local(stamp).isoformat(timespec="seconds")

    def load(self) -> None:
        s, m = self.session, self.m
        ids = [h.id for h in self.hosts]
        names = [h.name for h in self.hosts]
        self.incidents = list(s.scalars(
            select(Incident).where(or_(Incident.client_id == self.client.id, Incident.host_id.in_(ids)),
                                   Incident.opened_at < m.end,
                                   or_(Incident.resolved_at.is_(None), Incident.resolved_at > m.start))
            .order_by(Incident.opened_at, Incident.id)))
        self.runs = list(s.scalars(
            select(WorkflowRun).where(WorkflowRun.host.in_(names), WorkflowRun.dry_run.is_(False))
            .order_by(WorkflowRun.created_at, WorkflowRun.id)))
        self.silences = [(name, silence) for name, silence in s.execute(
            select(Host.name, Silence).join(Host, Host.id == Silence.host_id)
            .where(Silence.host_id.in_(ids), Silence.created_at < m.end, Silence.until > m.start))]
        targets = [*names, f"client:{self.client.name}"]
        self.occurrences = [(w, o) for w, o in s.execute(
            select(UpdateWindow, WindowOccurrence)
            .join(UpdateWindow, UpdateWindow.id == WindowOccurrence.window_id)
            .where(UpdateWindow.target.in_(targets), WindowOccurrence.status.in_(WINDOW_SPAN_STATES),
                   WindowOccurrence.scheduled_for < m.end))]
        self.checks = list(s.scalars(select(CheckState).where(CheckState.host_id.in_(ids))
                                     .order_by(CheckState.host_id, CheckState.name)))

    def severity_events(self, incident: Incident) -> list[tuple[float, str, str]]:
        """(at, kind, message) of the events that open, change the severity of, or resolve the incident."""
        if self._severity_events is None:
            ids = [i.id for i in self.incidents if i.cause == "check"]
            self._severity_events = defaultdict(list)
            if ids:
                stmt = (select(IncidentEvent.incident_id, IncidentEvent.at, IncidentEvent.kind,
                               IncidentEvent.message)
                        .where(IncidentEvent.incident_id.in_(ids),
                               IncidentEvent.kind.in_(("opened", "escalated", "severity", "resolved")))
                        .order_by(IncidentEvent.at, IncidentEvent.id))
                for incident_id, at, kind, message in self.session.execute(stmt):
                    self._severity_events[incident_id].append((at, kind, message))
        return self._severity_events[incident.id]

    def incident_end(self, incident: Incident) -> float:
        return incident.resolved_at if incident.resolved_at is not None else self.as_of

    def opened_in_month(self) -> list[Incident]:
        return [i for i in self.incidents if self.m.start <= i.opened_at < self.m.end]


def _check_of(incident: Incident) -> str | None:
    if incident.cause != "check" or incident.host_name is None:
        return None
    prefix = f"{incident.host_name}:check:"
    return incident.dedup_key[len(prefix):] if incident.dedup_key.startswith(prefix) else None


def _planned(ctx: _Context, host: Host, windows: Sequence[MaintenanceWindow]) -> list[Planned]:
    m = ctx.m
    spans = maintenance_spans(windows, client=ctx.client.name, host=host.name, start=m.start, end=m.end)
    for name, silence in ctx.silences:
        if name == host.name:
            spans.append(Planned(silence.created_at, silence.until, "silence",
                                 f"silence by {silence.owner_kind} {silence.owner_ref}: {silence.reason}"))
    for run in ctx.runs:
        if run.host == host.name:
            spans.append(Planned(run.created_at, run.finished_at or ctx.as_of, "run",
                                 f"run {run.id} ({run.playbook})"))
    for window, occurrence in ctx.occurrences:
        if window.target in (host.name, f"client:{ctx.client.name}"):
            start = occurrence.scheduled_for
            spans.append(Planned(start, start + window.duration_minutes * 60, "window",
                                 f"update window {window.name}"))
    return spans


def _figures(ctx: _Context, a: Availability) -> dict[str, Any]:
    share = a.availability
    return {
        "period_start": ctx.iso(a.period[0]), "period_end": ctx.iso(a.period[1]),
        "period_seconds": a.period_seconds, "down_seconds": a.down_seconds,
        "planned_down_seconds": a.planned_down_seconds,
        "unplanned_down_seconds": a.down_seconds - a.planned_down_seconds,
        "planned_seconds": a.planned_seconds,
        "availability": share, "availability_percent": None if share is None else round(share * 100, 3),
        "outages": [{**o, "start": ctx.iso(o["start"]), "end": ctx.iso(o["end"])} for o in a.outages()],
        "maintenance": [{**p, "start": ctx.iso(p["start"]), "end": ctx.iso(p["end"])}
                        for p in a.planned_list()],
    }


def _availability(ctx: _Context, windows: Sequence[MaintenanceWindow]) -> tuple[list[dict[str, Any]],
                                                                                 list[dict[str, Any]]]:
    hosts: list[dict[str, Any]] = []
    portals: list[dict[str, Any]] = []
    for host in ctx.hosts:
        period = (max(ctx.m.start, host.created_at), ctx.as_of)
        if period[1] < period[0]:
            period = (period[0], period[0])
        planned = tuple(_planned(ctx, host, windows))
        mine = [i for i in ctx.incidents if i.host_id == host.id]
        host_downs = tuple(Down(i.opened_at, ctx.incident_end(i), i.cause, i.id) for i in mine
                           if i.cause in HOST_DOWN_KINDS)
        hosts.append({"host": host.name, **_figures(ctx, Availability(period, host_downs, planned))})
        names = {c.name for c in ctx.checks if c.host_id == host.id and c.type in PORTAL_CHECK_TYPES}
        names |= {n for i in mine if (n := _check_of(i)) is not None and n.startswith(PORTAL_PREFIX)}
        unreachable = tuple(d for d in host_downs if d.kind == "unreachable")
        for name in sorted(names):
            downs = tuple(Down(a, b, "portal_down", i.id) for i in mine if _check_of(i) == name
                          for a, b in critical_spans(ctx.severity_events(i), ctx.incident_end(i)))
            portals.append({"host": host.name, "portal": name,
                            **_figures(ctx, Availability(period, downs + unreachable, planned))})
    return hosts, portals


def _stats(values: Iterable[float]) -> dict[str, Any]:
    found = sorted(values)
    return {"count": len(found), "median_seconds": statistics.median(found) if found else None,
            "worst_seconds": found[-1] if found else None}


def _events(ctx: _Context, ids: list[int]) -> dict[int, list[IncidentEvent]]:
    by_incident: dict[int, list[IncidentEvent]] = defaultdict(list)
    if ids:
        for event in ctx.session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id.in_(ids))
                                         .order_by(IncidentEvent.at, IncidentEvent.id)):
            by_incident[event.incident_id].append(event)
    return by_incident


def _incidents(ctx: _Context) -> dict[str, Any]:
    opened = ctx.opened_in_month()
    events = _events(ctx, [i.id for i in opened])
    acks: dict[int, float] = {}
    for incident in opened:
        first = next((e.at for e in events[incident.id] if e.kind == "acknowledged"),
                     incident.acknowledged_at)
        if first is not None:  # the timeline's first ack; the row's (latest) ack if the timeline lacks it
            acks[incident.id] = first - incident.opened_at
    resolves = {i.id: i.resolved_at - i.opened_at for i in opened if i.resolved_at is not None}

    def item(incident: Incident) -> dict[str, Any]:
        end = ctx.incident_end(incident) if incident.resolved_at is not None else None
        return {"id": incident.id, "host": incident.host_name, "kind": incident.cause,
                "severity": incident.severity, "summary": incident.summary, "status": incident.status,
                "opened_at": ctx.iso(incident.opened_at), "resolved_at": ctx.iso(end),
                "acknowledge_seconds": acks.get(incident.id), "resolve_seconds": resolves.get(incident.id)}

    def span(incident: Incident) -> float:
        end = incident.resolved_at if incident.resolved_at is not None else max(ctx.as_of, incident.opened_at)
        return end - incident.opened_at

    longest = sorted(opened, key=lambda i: (-span(i), i.id))[:LONGEST]
    return {
        "opened": len(opened),
        "by_kind": dict(sorted(Counter(i.cause for i in opened).items())),
        "still_open": sum(1 for i in opened if i.resolved_at is None),
        "acknowledge": _stats(acks.values()),
        "resolve": _stats(resolves.values()),
        "list": [item(i) for i in opened],
        "longest": [{**item(i), "duration_seconds": span(i), **_timeline(ctx, events[i.id])}
                    for i in longest],
    }


def _timeline(ctx: _Context, events: list[IncidentEvent]) -> dict[str, Any]:
    shown = [e for e in events if e.kind not in QUIET_EVENTS]
    return {
        "notifications": sum(1 for e in events if e.kind == "notified"),
        "timeline": [{"at": ctx.iso(e.at), "kind": e.kind, "actor": e.actor, "message": e.message[:200]}
                     for e in shown[:TIMELINE_EVENTS]],
        "timeline_more": max(0, len(shown) - TIMELINE_EVENTS),
    }


def _versions(captured: dict[str, Any]) -> list[dict[str, Any]]:
    """``X_before`` / ``X_after`` pairs of the run's captured values whose name says version."""
    found = []
    for key in sorted(captured):
        if key.endswith("_before") and "version" in key:
            stem = key[: -len("_before")]
            found.append({"name": stem, "before": captured[key], "after": captured.get(f"{stem}_after")})
    if "target_version" in captured:
        found.append({"name": "target_version", "before": None, "after": captured["target_version"]})
    return found


def _reason(run: WorkflowRun) -> str | None:
    if run.state == "SUCCEEDED":
        return None
    if run.aborted_at is not None:  # an operator's abort (controller/workflows/aborts.py)
        if run.state == "ABORTED":
            return f"aborted by {run.abort_requested_by} before the update began: nothing changed"
        return f"aborted by {run.abort_requested_by} during {run.failed_step or 'the update'}: {run.state}"
    error = (run.error or "").strip()
    parts = [f"failed at {run.failed_step}" if run.failed_step else "", error[:300]]
    return ": ".join(p for p in parts if p) or None


def _run_dict(ctx: _Context, run: WorkflowRun) -> dict[str, Any]:
    duration = None if run.finished_at is None else run.finished_at - run.created_at
    return {"id": run.id, "host": run.host, "playbook": run.playbook, "started_at": ctx.iso(run.created_at),
            "finished_at": ctx.iso(run.finished_at), "duration_seconds": duration, "outcome": run.state,
            "versions": _versions(dict(run.captured or {})), "rolled_back": run.state in ROLLED_BACK_STATES,
            "reason": _reason(run)}


def _updates(ctx: _Context) -> dict[str, Any]:
    m = ctx.m
    runs = [r for r in ctx.runs if m.start <= r.created_at < m.end and r.playbook not in DRILL_PLAYBOOKS]
    return {
        "runs": [_run_dict(ctx, r) for r in runs],
        "total": len(runs),
        "by_outcome": dict(sorted(Counter(r.state for r in runs).items())),
        "rolled_back": sum(1 for r in runs if r.state in ROLLED_BACK_STATES),
        "releases_held": _holds(ctx),
    }


def _holds(ctx: _Context) -> dict[str, Any]:
    """Holds of releases that a run on one of the client's hosts rolled back (or held on such a host),
    in force at some time in the month. Read by reflection: the table belongs to the release holds
    of the workflows; without it the section says so."""
    bind = ctx.session.connection()
    if not inspect(bind).has_table(HOLDS_TABLE):
        return {"available": False, "note": HOLDS_NOTE, "items": []}
    table = Table(HOLDS_TABLE, MetaData(), autoload_with=bind)
    missing = [c for c in HOLD_COLUMNS if c not in table.c]
    if missing:
        return {"available": False, "items": [],
                "note": f"table {HOLDS_TABLE} lacks the columns {', '.join(missing)}: holds not shown"}
    c = table.c
    names = [h.name for h in ctx.hosts]
    runs = [r.id for r in ctx.runs]
    stmt = (select(*(c[name] for name in HOLD_COLUMNS))
            .where(or_(c.host.in_(names), and_(c.run_id.is_not(None), c.run_id.in_(runs))),
                   c.held_at < ctx.m.end, or_(c.released_at.is_(None), c.released_at >= ctx.m.start))
            .order_by(c.held_at, c.id))
    items = []
    for row in ctx.session.execute(stmt).mappings():
        item = {name: row[name] for name in HOLD_COLUMNS}
        item["held_at"], item["released_at"] = ctx.iso(row["held_at"]), ctx.iso(row["released_at"])
        items.append(item)
    return {"available": True, "note": "", "items": items}


def _backups(ctx: _Context) -> dict[str, Any]:
    m = ctx.m
    hosts: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    backup_checks = {(c.host_id, c.name) for c in ctx.checks if c.type in BACKUP_CHECK_TYPES}
    for host in ctx.hosts:
        drills = [r for r in ctx.runs if r.host == host.name and r.playbook in DRILL_PLAYBOOKS]
        ended = [r for r in drills if r.finished_at is not None and r.finished_at < m.end]
        good = [r.finished_at for r in ended if r.state == "SUCCEEDED" and r.finished_at is not None]
        in_month = [r for r in drills if m.start <= r.created_at < m.end]
        backed_up = [r.finished_at for r in ctx.runs
                     if r.host == host.name and r.playbook not in DRILL_PLAYBOOKS and r.state in BACKED_UP
                     and r.backup_started and r.finished_at is not None and r.finished_at < m.end]
        checks = [{"name": c.name, "status": STATUS_NAMES.get(c.status, str(c.status)), "summary": c.summary,
                   "updated_at": ctx.iso(c.updated_at)}
                  for c in ctx.checks if c.host_id == host.id and c.type in BACKUP_CHECK_TYPES]
        hosts.append({
            "host": host.name,
            "last_drill_success": ctx.iso(max(good)) if good else None,
            "drills": len(in_month),
            "drills_failed": sum(1 for r in in_month
                                 if r.state not in NOT_FAILED and r.finished_at is not None),
            "last_update_backup": ctx.iso(max(backed_up)) if backed_up else None,
            "backup_checks_now": checks,
        })
        for run in in_month:
            if run.state not in NOT_FAILED and run.finished_at is not None:
                failures.append({"at": ctx.iso(run.created_at), "host": host.name,
                                 "what": f"restore drill run {run.id} ended {run.state}",
                                 "detail": _reason(run) or ""})
    for incident in ctx.opened_in_month():
        check = _check_of(incident)
        if incident.cause in BACKUP_CAUSES or (incident.host_id, check) in backup_checks:
            failures.append({"at": ctx.iso(incident.opened_at), "host": incident.host_name,
                             "what": f"incident {incident.id} ({incident.cause})",
                             "detail": incident.summary})
    failures.sort(key=lambda f: (f["at"] or "", f["what"]))
    return {"hosts": hosts, "failures": failures}


def _hours(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _worklog(ctx: _Context) -> dict[str, Any]:
    rows = worklog.entries(ctx.session, ctx.client.name, ctx.m.start, ctx.m.end)
    by_operator: Counter[str] = Counter()
    by_incident: Counter[int] = Counter()
    by_run: Counter[int] = Counter()
    free = 0
    for entry in rows:
        by_operator[entry.actor] += entry.minutes
        if entry.incident_id is not None:
            by_incident[entry.incident_id] += entry.minutes
        elif entry.run_id is not None:
            by_run[entry.run_id] += entry.minutes
        else:
            free += entry.minutes
    total = sum(e.minutes for e in rows)
    return {
        "entries": [{**worklog.entry_dict(e), "at": ctx.iso(e.at)} for e in rows],
        "by_operator": [{"operator": k, "minutes": v, "hours": _hours(v)}
                        for k, v in sorted(by_operator.items())],
        "by_incident": [{"incident_id": k, "minutes": v} for k, v in sorted(by_incident.items())],
        "by_run": [{"run_id": k, "minutes": v} for k, v in sorted(by_run.items())],
        "free_form_minutes": free,
        "total_minutes": total,
        "total_hours": _hours(total),
    }
