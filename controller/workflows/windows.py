"""Update windows: APScheduler 3 on a persistent job store (the controller's database).

A window is a cron expression (cron(8) semantics: :mod:`controller.schedule`) in a time zone plus a
duration. At its start the hosts it covers are updated as a rollout
(:mod:`controller.workflows.rollouts`, started by ``window:<name>``): one after another, the first
as the canary; a rollback (or quarantine) halts the rest. A host is not started when its expected
duration (median of its last successful runs of that playbook, 15 min when unknown) no longer
fits before the window ends. A playbook that is not a release (it declares its own
``failure_incident``, like the restore drill) does not halt the window when one host's run ends
ROLLED_BACK: every host is drilled; a quarantine still halts. While a host is worked on, the
window silences its notifications (owner ``window <id>``; the run's own verification decides)
and lifts only that silence after the host's run: an operator's silence of the host stays.

A window start is fired once: its occurrence row has a unique (window, scheduled start) key, so a
start that a second controller (or the same job run again after a leader change) tries to fire
finds the row and does nothing.

An occurrence still ``started`` when a controller (the new leader) starts is marked ``interrupted``:
the controller that ran it stopped mid-window; its remaining hosts are not run late.

A window start missed while the controller was down is never run late: APScheduler reports it as
missed (``misfire_grace_time`` 60 s, coalesced), it is recorded as a ``missed`` occurrence and a
warning incident ``update_window_missed`` is opened for the window's client (so channels limited
to that client get it), notified like every incident.

Windows are edited, disabled, enabled and deleted in the database (:func:`edit_window`,
:func:`set_enabled`, :func:`delete_window`; each change is an audit row of
:mod:`controller.workflows.window_changes` naming the operator); a running scheduler picks the
changes up within ``SYNC_SECONDS``, and a disabled or deleted window never starts.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.alerting.silences import Owner
from controller.errors import ConfigError
from controller.schedule import CronSchedule
from controller.schedule_trigger import CronScheduleTrigger
from controller.store.db import Database
from controller.workflows import window_changes
from controller.workflows.models import UpdateWindow, WindowOccurrence, WorkflowRun
from controller.workflows.outcomes import IncidentRequest, IncidentSink
from controller.workflows.rollouts import (
    NOT_STARTED,
    REFUSED,
    STOPPED,
    RolloutDriver,
    create_rollout,
    make_plan,
)
from controller.workflows.runs import RunSummary

GRACE_SECONDS = 60
SYNC_SECONDS = 30  # a window changed by another process is picked up this often
DEFAULT_EXPECTED_SECONDS = 15 * 60
JOBS_TABLE = "workflow_scheduler_jobs"
HALTING = ("ROLLED_BACK", "QUARANTINED")

#: the window's playbook (name or path) -> whether a rolled-back run of it is a failed release that
#: stops the window's remaining hosts (a restore drill's is not: each host's backups are its own)
ReleaseTest = Callable[[str], bool]

#: (window, host, window end as unix seconds) -> the run's summary, or why it was refused
HostRunner = Callable[[UpdateWindow, str, float], RunSummary | str]

#: the running scheduler, for the job function (stored jobs refer to functions by name)
_active: WindowScheduler | None = None


#: silence ``host`` for ``owner`` until ``until`` (unix seconds) with a reason; None: nothing silenced
Silencer = Callable[[str, Owner, float, str], Owner | None]
#: lift the silences of ``owner`` on ``host``
Lifter = Callable[[Owner | None, str | None], None]


def schedule_of(cron: str, timezone: str, source: str = "window") -> CronSchedule:
    """The window's schedule; ConfigError naming ``cron`` or ``timezone`` when either is wrong."""
    try:
        ZoneInfo(timezone)
    except (ValueError, KeyError):
        raise ConfigError(source, "timezone", "an IANA time zone such as Europe/Moscow", timezone) from None
    try:
        return CronSchedule.parse(cron, timezone)
    except ValueError as exc:
        raise ConfigError(source, "cron", f"a cron expression (minute hour day month weekday): {exc}",
                          cron) from None


def add_window(session: Session, *, name: str, target: str, playbook: str, cron: str, duration_minutes: int,
               timezone: str, variables: dict[str, str], now: float,
               actor: str = "boxkeeper") -> UpdateWindow:
    schedule_of(cron, timezone, f"window {name}")
    if duration_minutes < 1:
        raise ConfigError(f"window {name}", "duration", "minutes >= 1", duration_minutes)
    window = UpdateWindow(name=name, target=target, playbook=playbook, cron=cron,
                          duration_minutes=duration_minutes, timezone=timezone, variables=variables,
                          enabled=True, created_at=now)
    session.add(window)
    session.flush()
    window_changes.record(session, window_id=window.id, name=name, action="add", actor=actor, now=now,
                          changes={"target": [None, target], "playbook": [None, playbook],
                                   "cron": [None, cron], "duration_minutes": [None, duration_minutes],
                                   "timezone": [None, timezone]})
    return window


class UnknownWindowError(LookupError):
    """No window with that name."""


def _named(session: Session, name: str) -> UpdateWindow:
    window = session.scalars(select(UpdateWindow).where(UpdateWindow.name == name)).first()
    if window is None:
        raise UnknownWindowError(f"no update window named {name!r}")
    return window


EDITABLE = ("target", "playbook", "cron", "duration_minutes", "timezone", "variables")


def edit_window(session: Session, name: str, *, actor: str, now: float, **fields: Any) -> dict[str, Any]:
    """Change some of :data:`EDITABLE` (None: unchanged); the changes as ``{field: [before, after]}``
    (recorded with the actor). The new schedule is checked first: ConfigError, nothing changed."""
    window = _named(session, name)
    wanted = {k: v for k, v in fields.items() if v is not None}
    unknown = set(wanted) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    cron, zone = wanted.get("cron", window.cron), wanted.get("timezone", window.timezone)
    schedule_of(cron, zone, f"window {name}")
    if wanted.get("duration_minutes", 1) < 1:
        raise ConfigError(f"window {name}", "duration", "minutes >= 1", wanted["duration_minutes"])
    changes = {k: [getattr(window, k), v] for k, v in wanted.items() if getattr(window, k) != v}
    for key, (_before, after) in changes.items():
        setattr(window, key, after)
    if changes:
        window_changes.record(session, window_id=window.id, name=name, action="edit", actor=actor, now=now,
                              changes=changes)
    return changes


def set_enabled(session: Session, name: str, enabled: bool, *, actor: str, now: float) -> bool:
    """Enable or disable; False when it already was (nothing recorded)."""
    window = _named(session, name)
    if window.enabled == enabled:
        return False
    window.enabled = enabled
    window_changes.record(session, window_id=window.id, name=name, action="enable" if enabled else "disable",
                          actor=actor, now=now)
    return True


def delete_window(session: Session, name: str, *, actor: str, now: float) -> None:
    """Delete the window and its occurrences (the audit rows stay)."""
    window = _named(session, name)
    window_changes.record(session, window_id=window.id, name=name, action="delete", actor=actor, now=now,
                          changes={"target": [window.target, None], "playbook": [window.playbook, None],
                                   "cron": [window.cron, None]})
    session.delete(window)


def describe_windows(session: Session, recent: int = 5) -> list[dict[str, Any]]:
    """Every window with its last ``recent`` occurrences (started, missed, skipped and why)."""
    return [
        {"id": w.id, "name": w.name, "target": w.target, "playbook": w.playbook, "cron": w.cron,
         "timezone": w.timezone, "duration_minutes": w.duration_minutes, "enabled": w.enabled,
         "variables": dict(w.variables), "occurrences": occurrences(session, w.id)[-recent:]}
        for w in session.scalars(select(UpdateWindow).order_by(UpdateWindow.name))
    ]


def expected_duration(session: Session, host: str, playbook: str) -> float:
    """Median wall time of the host's last 5 successful real runs of the playbook (default 15 min)."""
    rows = session.execute(select(WorkflowRun.created_at, WorkflowRun.finished_at).where(
        WorkflowRun.host == host, WorkflowRun.state == "SUCCEEDED", WorkflowRun.dry_run.is_(False),
        WorkflowRun.playbook == playbook).order_by(WorkflowRun.id.desc()).limit(5)).all()
    took = [end - start for start, end in rows if end is not None]
    return statistics.median(took) if took else DEFAULT_EXPECTED_SECONDS


def last_start(window: UpdateWindow, now: float) -> float:
    """The window's latest scheduled start at or before ``now`` (unix seconds)."""
    found = schedule_of(window.cron, window.timezone).latest_at_or_before(datetime.fromtimestamp(now, UTC))
    if found is None:
        raise ValueError(f"window {window.name!r}: cron {window.cron!r} had no start in the last years")
    return found.timestamp()


def fire(window_id: int) -> None:
    """The stored job's function: run the window now (called by APScheduler)."""
    if _active is not None:
        _active.run_window(window_id)


class WindowScheduler:
    def __init__(self, db: Database, *, hosts_of: Callable[[str], list[str]], run_host: HostRunner,
                 incidents: IncidentSink, grace_seconds: int = GRACE_SECONDS,
                 silence: Silencer, lift: Lifter, clock: Callable[[], float] = time.time,
                 is_release: ReleaseTest = lambda playbook: True) -> None:
        self.db = db
        self.is_release = is_release
        self.hosts_of = hosts_of
        self.run_host = run_host
        self.incidents = incidents
        self.clock = clock
        self.silence, self.lift = silence, lift
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename=JOBS_TABLE),
                       "local": MemoryJobStore()},
            job_defaults={"coalesce": True, "misfire_grace_time": grace_seconds, "max_instances": 1},
            timezone=UTC)
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.done = threading.Event()

    def start(self, *, paused: bool = False) -> None:
        global _active
        _active = self
        self.close_interrupted()
        self.scheduler.start(paused=paused)
        self.sync()
        self.scheduler.add_job(self.sync, "interval", seconds=SYNC_SECONDS, id="windows-sync",
                               jobstore="local", replace_existing=True)

    def close_interrupted(self) -> int:
        """Occurrences left ``started`` by a controller that stopped mid-window (only the leader runs
        windows, and this one is starting: no other is running one) become ``interrupted``; the
        hosts it had not started yet are not updated late. Their number."""
        with self.db.session() as s:
            rows = s.scalars(select(WindowOccurrence).where(WindowOccurrence.status == "started")).all()
            for row in rows:
                row.status = "interrupted"
                row.detail = "the controller running this window stopped; hosts not started by then were " \
                    "not updated (a run in flight is reconciled)"
            return len(rows)

    def stop(self) -> None:
        global _active
        self.scheduler.shutdown(wait=True)
        if _active is self:
            _active = None

    def sync(self) -> None:
        """One stored job per enabled window; existing jobs keep their next run time (so a start
        missed while the controller was down is still reported as missed). A job stored with
        another trigger (APScheduler's CronTrigger, which put stepped weekdays on the wrong days,
        or an older expression) gets the window's schedule, counted from now."""
        with self.db.read_session() as s:
            wanted = {f"window-{w.id}": (w.id, w.name, w.cron, w.timezone)
                      for w in s.scalars(select(UpdateWindow).where(UpdateWindow.enabled.is_(True)))}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("window-") and job.id not in wanted:
                job.remove()
        for job_id, (window_id, name, cron, timezone) in wanted.items():
            trigger = CronScheduleTrigger(schedule_of(cron, timezone))
            job = self.scheduler.get_job(job_id)
            if job is None:
                self.scheduler.add_job(fire, trigger, args=[window_id], id=job_id, name=name)
            elif not isinstance(job.trigger, CronScheduleTrigger) or str(job.trigger) != str(trigger):
                self.scheduler.reschedule_job(job_id, trigger=trigger)

    def next_start(self, window_id: int) -> datetime | None:
        job = self.scheduler.get_job(f"window-{window_id}")
        return None if job is None else job.next_run_time

    # ------------------------------------------------------------------ events

    def _on_missed(self, event: JobExecutionEvent) -> None:
        if not event.job_id.startswith("window-"):
            return
        window_id = int(event.job_id.removeprefix("window-"))
        scheduled: datetime = event.scheduled_run_time
        with self.db.session() as s:
            window = s.get(UpdateWindow, window_id)
            if window is None:
                return
            when = scheduled.astimezone(ZoneInfo(window.timezone)).strftime("%Y-%m-%d %H:%M %Z")
            detail = f"window {window.name} ({when}) was missed: the controller was not running; not run late"
            if not _record(s, WindowOccurrence(
                    window_id=window_id, scheduled_for=scheduled.timestamp(), status="missed", detail=detail,
                    run_ids=[], recorded_at=self.clock())):
                return  # this start was already fired (or recorded missed) by another controller
            client = window.target.removeprefix("client:") if window.target.startswith("client:") else None
            self.incidents.open(s, IncidentRequest(
                window.target, f"workflow:window-missed:{window_id}:{int(scheduled.timestamp())}",
                "update_window_missed", "warning", f"update window missed: {detail}",
                {"window": window.name, "scheduled_for": scheduled.isoformat(), "playbook": window.playbook},
                client=client))
        self.done.set()

    def run_window(self, window_id: int) -> None:
        now = self.clock()
        with self.db.session() as s:
            window = s.get(UpdateWindow, window_id)
            if window is None or not window.enabled:  # deleted or disabled since the job was stored
                return
            s.expunge(window)
            start = last_start(window, now)
            occurrence = WindowOccurrence(window_id=window_id, scheduled_for=start, status="started",
                                          detail="", run_ids=[], recorded_at=now)
            if not _record(s, occurrence):
                return  # another controller fired this start already: it runs there, once
            occurrence_id = occurrence.id
        ends_at = start + window.duration_minutes * 60
        status, notes, run_ids = self._rollout(window, ends_at)
        with self.db.session() as s:
            row = s.get(WindowOccurrence, occurrence_id)
            assert row is not None
            row.status, row.detail, row.run_ids = status, "; ".join(notes), run_ids
        self.done.set()

    def _rollout(self, window: UpdateWindow, ends_at: float) -> tuple[str, list[str], list[int]]:
        """The window's hosts as a rollout (``started_by`` ``window:<name>``): the first host is the
        canary, then one host at a time; a rollback of a release (or a quarantine) stops the rest."""
        hosts = self.hosts_of(window.target)
        if not hosts:
            return "done", [f"no hosts in {window.target}"], []
        name = _playbook_name(window.playbook)
        release = self.is_release(window.playbook)
        client = window.target.removeprefix("client:") if window.target.startswith("client:") else None
        with self.db.session() as s:
            rollout_id = create_rollout(s, make_plan(hosts), playbook=name,
                                        started_by=f"window:{window.name}", client=client, now=self.clock())

        def fits(host: str) -> str | None:
            with self.db.read_session() as s:
                expected = expected_duration(s, host, name)
            if self.clock() + expected > ends_at:
                return f"expected {expected / 60:.0f} min no longer fits the window"
            return None

        def run_host(host: str, started: Callable[[int], None]) -> RunSummary | str:
            owner = self.silence(host, Owner.window(window.id), ends_at, f"update window {window.name}")
            try:
                return self.run_host(window, host, ends_at)
            finally:
                self.lift(owner, host)

        def halts(outcome: str) -> bool:
            return outcome == "QUARANTINED" or (outcome in HALTING and release)

        done = RolloutDriver(self.db.session, run_host=run_host, failing=halts, gate=fits,
                             clock=self.clock).drive(rollout_id)
        notes = [f"rollout {rollout_id}"]
        for h in done.hosts:
            if h.outcome == NOT_STARTED:
                notes.append(f"{h.host}: not started: {h.note}")
            elif h.outcome == REFUSED:
                notes.append(f"{h.host}: refused: {h.note}")
            elif h.run_id is not None:
                notes.append(f"{h.host}: run {h.run_id} {h.outcome}")
        if done.state == STOPPED:
            notes.append("halted: a rollback in this window stops the remaining hosts")
            return "halted", notes, [h.run_id for h in done.hosts if h.run_id is not None]
        return "done", notes, [h.run_id for h in done.hosts if h.run_id is not None]


def _record(session: Session, occurrence: WindowOccurrence) -> bool:
    """Insert the occurrence; False when its (window, scheduled start) is already recorded."""
    try:
        with session.begin_nested():
            session.add(occurrence)
            session.flush()
    except IntegrityError:
        return False
    return True


def _playbook_name(playbook: str) -> str:
    return playbook.rsplit("/", 1)[-1].removesuffix(".yaml")


def occurrences(session: Session, window_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(WindowOccurrence).where(WindowOccurrence.window_id == window_id)
                           .order_by(WindowOccurrence.scheduled_for))
    return [{"scheduled_for": r.scheduled_for, "status": r.status, "detail": r.detail, "run_ids": r.run_ids}
            for r in rows]
