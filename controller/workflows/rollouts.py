"""Rollouts: one playbook over many hosts — a canary, then batches in parallel, a failure budget.

::

    canary (batch 0, one host) ──ok──▶ batch 1 (N hosts at once) ──▶ batch 2 ──▶ … ──▶ SUCCEEDED | FINISHED
        │                                   │
        └─ failed: STOPPED                  └─ failures > budget: STOPPED (no later batch starts)

Each host's run is an ordinary run (its own host lease, state machine, incident); the rollout only
decides which runs start when. A run that ends ROLLED_BACK, FAILED or QUARANTINED, and a host whose
run was refused (busy, quarantined, key not trusted), count against the failure budget
(``max_failures``; 0 = stop after the first); a run that ends SKIPPED (its release is held) or
ABORTED (an operator's abort before any change, :mod:`controller.workflows.aborts`) does not.
The canary's failure always stops the rollout, whatever the budget: it exists to prove the release
first. A stopped rollout opens ONE incident naming it, the hosts that failed and the hosts
not attempted (each failed run has its own incident as well).

Operators steer a rollout from any process through its row (:func:`request`): *pause* — no new
batch starts, runs going finish; *resume*; *abort* — no new run starts, runs going finish their
workflow normally (a run is never cut off mid-update; ``rollouts abort ID --runs`` also asks each
run going to abort at its next step boundary). The driver reads the request between runs.
A paused rollout not resumed within :data:`PAUSE_LIMIT` is aborted.

A driving process that dies (``kill -9``, a lost SSH session of ``update run --hosts``, the leading
``serve`` of two) leaves its rollout RUNNING. The driver therefore touches the rollout's
``updated_at`` every :data:`HEARTBEAT` seconds while it lives, and :func:`reap` — run by ``serve``
after its start-up reconciliation and every minute after — ends a RUNNING or PAUSED rollout silent
for :data:`STALE_AFTER` as STOPPED with its incident naming the hosts not attempted (AWX reaps a
job whose node died the same way). It is not resumed: its variables, which may hold secrets, are
not stored, and whether the rest of the fleet should still get the release is an operator's call
(``update run PLAYBOOK --hosts`` the hosts the incident names).

Store functions take a session; :class:`RolloutDriver` takes a session factory and callables for the
edges (run one host, open the incident, the clock), so it is tested with fakes and driven for real by
:mod:`controller.runtime`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.alerting.incidents import open_incident
from controller.errors import ConfigError
from controller.workflows.errors import RolloutStateError, UnknownRolloutError
from controller.workflows.models import WorkflowRun
from controller.workflows.rollout_models import Rollout, RolloutHost
from controller.workflows.runs import RunSummary, SessionFactory

log = logging.getLogger(__name__)

RUNNING, PAUSED, SUCCEEDED, FINISHED, STOPPED, ABORTED = (
    "RUNNING", "PAUSED", "SUCCEEDED", "FINISHED", "STOPPED", "ABORTED")
ENDED = frozenset({SUCCEEDED, FINISHED, STOPPED, ABORTED})
#: a host's outcome besides a run's final state
PENDING, STARTED, REFUSED, NOT_STARTED, NOT_ATTEMPTED = (
    "PENDING", "RUNNING", "REFUSED", "NOT_STARTED", "NOT_ATTEMPTED")
#: outcomes that spend the failure budget (SKIPPED — a held release —, ABORTED — also a run rolled
#: back on an operator's abort — and NOT_STARTED do not)
FAILING = frozenset({"ROLLED_BACK", "FAILED", "QUARANTINED", REFUSED})
PAUSE_LIMIT = 24 * 3600.0
#: seconds between two signs of life of a rollout's driver, and the silence after which it is reaped
HEARTBEAT = 30.0
STALE_AFTER = 4 * HEARTBEAT

#: run one host: (host, called with the run id once the run exists) -> its summary, or why refused
HostRun = Callable[[str, Callable[[int], None]], RunSummary | str]
#: None: start the host; a text: do not start it, and why (an update window that no longer fits)
Gate = Callable[[str], str | None]
#: which host outcomes spend the failure budget
FailureTest = Callable[[str], bool]


# ---------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class RolloutPlan:
    """The hosts in order (the canary first), the batch size after the canary, the budget."""

    hosts: tuple[str, ...]
    batch_size: int
    max_failures: int = 0

    @property
    def canary(self) -> str:
        return self.hosts[0]

    def batches(self) -> list[tuple[str, ...]]:
        rest = self.hosts[1:]
        return [self.hosts[:1]] + [rest[i:i + self.batch_size] for i in range(0, len(rest), self.batch_size)]


def batch_size_of(text: str | int, hosts: int, source: str = "--batch-size") -> int:
    """``4`` hosts, or ``25%`` of all the rollout's hosts (rounded up, at least 1)."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            percent = float(raw[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return max(1, math.ceil(hosts * percent / 100))
        size = int(raw)
        if size < 1:
            raise ValueError
        return size
    except ValueError:
        raise ConfigError(source, "batch size", "a number of hosts >= 1 or a percentage such as 25%",
                          text) from None


def make_plan(hosts: Sequence[str], *, canary: str | None = None, batch: str | int = 1,
              max_failures: int = 0) -> RolloutPlan:
    """The plan, or ConfigError naming the option that is wrong."""
    ordered = list(dict.fromkeys(hosts))
    if not ordered:
        raise ConfigError("rollout", "hosts", "at least one host")
    if canary is not None:
        if canary not in ordered:
            raise ConfigError("--canary", "canary", f"one of the rollout's hosts ({', '.join(ordered)})",
                              canary)
        ordered.remove(canary)
        ordered.insert(0, canary)
    if max_failures < 0:
        raise ConfigError("--max-failures", "max failures", "a number >= 0", max_failures)
    return RolloutPlan(tuple(ordered), batch_size_of(batch, len(ordered)), max_failures)


# ---------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class HostOutcome:
    host: str
    batch: int
    run_id: int | None
    outcome: str
    note: str


@dataclass(frozen=True)
class RolloutSummary:
    id: int
    playbook: str
    state: str
    control: str | None
    canary: str
    batch_size: int
    max_failures: int
    started_by: str
    client: str | None
    detail: str
    incident_id: int | None
    created_at: float
    finished_at: float | None
    hosts: tuple[HostOutcome, ...] = field(default=())

    @property
    def failures(self) -> int:
        return sum(1 for h in self.hosts if h.outcome in FAILING)

    @property
    def batches(self) -> int:
        return max((h.batch for h in self.hosts), default=0) + 1

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["hosts"] = [h.__dict__ for h in self.hosts]
        data["failures"] = self.failures
        return data


def create_rollout(session: Session, plan: RolloutPlan, *, playbook: str, started_by: str,
                   client: str | None, now: float) -> int:
    rollout = Rollout(playbook=playbook, state=RUNNING, control=None, canary=plan.canary,
                      batch_size=plan.batch_size, max_failures=plan.max_failures, started_by=started_by,
                      client=client, detail="", created_at=now, updated_at=now)
    session.add(rollout)
    session.flush()
    position = 0
    for number, batch in enumerate(plan.batches()):
        for host in batch:
            session.add(RolloutHost(rollout_id=rollout.id, position=position, host=host, batch=number,
                                    outcome=PENDING, note=""))
            position += 1
    session.flush()
    return rollout.id


def _get(session: Session, rollout_id: int) -> Rollout:
    row = session.get(Rollout, rollout_id)
    if row is None:
        raise UnknownRolloutError(f"no rollout with id {rollout_id}")
    return row


def summary(session: Session, rollout_id: int) -> RolloutSummary:
    r = _get(session, rollout_id)
    hosts = tuple(HostOutcome(h.host, h.batch, h.run_id, h.outcome, h.note) for h in session.scalars(
        select(RolloutHost).where(RolloutHost.rollout_id == rollout_id).order_by(RolloutHost.position)))
    return RolloutSummary(r.id, r.playbook, r.state, r.control, r.canary, r.batch_size, r.max_failures,
                          r.started_by, r.client, r.detail, r.incident_id, r.created_at, r.finished_at, hosts)


def list_rollouts(session: Session, limit: int = 50) -> list[RolloutSummary]:
    ids = session.scalars(select(Rollout.id).order_by(Rollout.id.desc()).limit(limit))
    return [summary(session, i) for i in ids]


def rollout_of_run(session: Session, run_id: int) -> int | None:
    return session.scalar(select(RolloutHost.rollout_id).where(RolloutHost.run_id == run_id))


def request(session: Session, rollout_id: int, action: str, *, actor: str, now: float) -> str:
    """Ask the rollout's driver to pause, resume or abort; returns what was recorded. Raises
    UnknownRolloutError, or RolloutStateError when the rollout's state does not allow it."""
    r = _get(session, rollout_id)
    if r.state in ENDED:
        raise RolloutStateError(f"rollout {rollout_id} has ended ({r.state}): nothing to {action}")
    if action == "pause":
        if r.control == "abort":
            raise RolloutStateError(f"rollout {rollout_id} is being aborted")
        r.control = "pause"
        said = "pause requested: no new batch starts; runs going finish"
    elif action == "resume":
        if r.control != "pause" and r.state != PAUSED:
            raise RolloutStateError(f"rollout {rollout_id} is not paused ({r.state})")
        r.control = None
        said = "resumed"
    elif action == "abort":
        r.control = "abort"
        said = "abort requested: no new run starts; runs going finish their workflow"
    else:
        raise ValueError(f"unknown rollout action {action!r}")
    _note(r, f"{said} (by {actor})", now)
    return said


def _note(r: Rollout, text: str, now: float) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
    r.detail = (r.detail + "\n" if r.detail else "") + f"{stamp} UTC {text}"
    r.updated_at = now


def _set_host(session: Session, rollout_id: int, host: str, **values: Any) -> None:
    row = session.scalars(select(RolloutHost).where(RolloutHost.rollout_id == rollout_id,
                                                    RolloutHost.host == host)).one()
    for key, value in values.items():
        setattr(row, key, value)


# ---------------------------------------------------------------------------------------- incident

#: (session, the stopped rollout, why it stopped) -> the incident's id
IncidentOpener = Callable[[Session, RolloutSummary, str], int]


def open_stopped_incident(session: Session, rollout: RolloutSummary, reason: str) -> int:
    """ONE incident for a stopped rollout, naming it, its failed hosts and the hosts not attempted
    (through :func:`controller.alerting.incidents.open_incident`; routed to the rollout's client)."""
    failed = [f"{h.host} ({h.outcome}{f', run {h.run_id}' if h.run_id else ''})"
              for h in rollout.hosts if h.outcome in FAILING]
    left = [h.host for h in rollout.hosts if h.outcome == NOT_ATTEMPTED]
    text = (f"rollout {rollout.id} of {rollout.playbook} stopped: {reason}; failed: "
            f"{', '.join(failed) or 'none'}; not attempted: {', '.join(left) or 'none'}")
    incident = open_incident(
        session, host=None, key=f"workflow:rollout:{rollout.id}", cause="rollout_stopped",
        severity="critical", summary=text, client=rollout.client,
        details={"rollout_id": rollout.id, "playbook": rollout.playbook, "reason": reason,
                 "failed_hosts": [h.host for h in rollout.hosts if h.outcome in FAILING],
                 "not_attempted": left, "started_by": rollout.started_by,
                 "runs": {h.host: h.run_id for h in rollout.hosts if h.run_id is not None}})
    return incident.id


# ---------------------------------------------------------------------------------------- reaping


def beat(sessions: SessionFactory, rollout_id: int, now: float) -> bool:
    """The driver's sign of life; False once the rollout has ended (the heartbeat stops)."""
    with sessions() as s:
        r = _get(s, rollout_id)
        if r.state in ENDED:
            return False
        r.updated_at = now
        return True


def reap(sessions: SessionFactory, *, now: float, stale_after: float = STALE_AFTER,
         incident: IncidentOpener = open_stopped_incident) -> list[RolloutSummary]:
    """End every RUNNING or PAUSED rollout whose driver gave no sign of life for ``stale_after``
    seconds: STOPPED, its hosts not started NOT_ATTEMPTED, a started host's outcome its run's state
    (its run is reconciled on its own), and ONE incident (module docstring)."""
    with sessions() as s:
        stale = list(s.scalars(select(Rollout.id).where(Rollout.state.in_((RUNNING, PAUSED)),
                                                        Rollout.updated_at < now - stale_after)))
    reaped = []
    for rollout_id in stale:
        with sessions() as s:
            r = _get(s, rollout_id)
            if r.state not in (RUNNING, PAUSED) or r.updated_at >= now - stale_after:
                continue  # its driver spoke meanwhile, or another controller reaped it
            silent = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(r.updated_at))
            reason = f"its driving process stopped (no sign of life since {silent})"
            for row in s.scalars(select(RolloutHost).where(RolloutHost.rollout_id == rollout_id,
                                                           RolloutHost.outcome.in_((PENDING, STARTED)))):
                run = s.get(WorkflowRun, row.run_id) if row.run_id is not None else None
                row.outcome = run.state if run is not None else NOT_ATTEMPTED
            r.state, r.finished_at = STOPPED, now
            _note(r, f"{STOPPED}: {reason}", now)
            s.flush()
            r.incident_id = incident(s, summary(s, rollout_id), reason)
        with sessions() as s:
            reaped.append(summary(s, rollout_id))
    return reaped


# ---------------------------------------------------------------------------------------- driving


class RolloutDriver:
    """Drives one rollout to its end in the calling thread (a batch's runs in threads of their own)."""

    def __init__(self, sessions: SessionFactory, *, run_host: HostRun,
                 failing: FailureTest = FAILING.__contains__,
                 gate: Gate | None = None, on_event: Callable[[str], None] = lambda text: None,
                 incident: IncidentOpener = open_stopped_incident, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, poll: float = 1.0,
                 pause_limit: float = PAUSE_LIMIT, heartbeat: float = HEARTBEAT) -> None:
        self.sessions = sessions
        self.run_host = run_host
        self.failing = failing
        self.gate = gate
        self.on_event = on_event
        self.incident = incident
        self.clock, self.sleep, self.poll, self.pause_limit = clock, sleep, poll, pause_limit
        self.heartbeat = heartbeat

    def drive(self, rollout_id: int) -> RolloutSummary:
        """Drive the rollout to its end, with a heartbeat thread while it goes (:func:`reap`)."""
        done = threading.Event()

        def beating() -> None:
            while not done.wait(self.heartbeat):
                try:
                    if not beat(self.sessions, rollout_id, self.clock()):
                        return
                except Exception:  # a busy database: the next beat tries again
                    log.warning("rollout %d: heartbeat not recorded; trying again", rollout_id, exc_info=True)

        thread = threading.Thread(target=beating, name=f"rollout-{rollout_id}-heartbeat", daemon=True)
        thread.start()
        try:
            return self._drive(rollout_id)
        finally:
            done.set()

    def _drive(self, rollout_id: int) -> RolloutSummary:
        with self.sessions() as s:
            plan = summary(s, rollout_id)
        batches: dict[int, list[str]] = {}
        for h in plan.hosts:
            batches.setdefault(h.batch, []).append(h.host)
        failures, end, reason = 0, SUCCEEDED, ""
        for number in sorted(batches):
            if self._checkpoint(rollout_id) == "abort":
                end, reason = ABORTED, "aborted by an operator"
                break
            hosts = batches[number]
            label = "canary" if number == 0 else f"batch {number}/{len(batches) - 1}"
            self.on_event(f"rollout {rollout_id}: {label}: {', '.join(hosts)}")
            outcomes = self._batch(rollout_id, hosts)
            failed = [h for h, outcome in outcomes.items() if self.failing(outcome)]
            failures += len(failed)
            if any(outcome != "SUCCEEDED" for outcome in outcomes.values()):
                end = FINISHED
            if number == 0 and failed:
                end, reason = STOPPED, f"the canary {hosts[0]} did not succeed ({outcomes[hosts[0]]})"
                break
            if failures > plan.max_failures:
                end, reason = STOPPED, (f"failure budget spent ({failures} host(s) failed, "
                                        f"{plan.max_failures} allowed)")
                break
        return self._end(rollout_id, end, reason)

    # -------------------------------------------------------------- steering

    def _checkpoint(self, rollout_id: int) -> str | None:
        """Between batches: "abort", or None to go on (waiting here while paused)."""
        paused_at: float | None = None
        while True:
            with self.sessions() as s:
                r = _get(s, rollout_id)
                if r.control == "abort" or r.state in ENDED:  # ENDED: reaped while this driver starved
                    return "abort"
                if r.control != "pause":
                    if r.state == PAUSED:
                        r.state = RUNNING
                        r.updated_at = self.clock()
                        self.on_event(f"rollout {rollout_id}: resumed")
                    return None
                if r.state != PAUSED:
                    r.state = PAUSED
                    _note(r, "paused: runs going have finished; no new batch starts until resumed",
                          self.clock())
                    self.on_event(f"rollout {rollout_id}: paused (boxkeeper rollouts resume {rollout_id})")
                    paused_at = self.clock()
                elif paused_at is None:
                    paused_at = self.clock()
                if self.clock() - paused_at > self.pause_limit:
                    r.control = "abort"
                    _note(r, f"not resumed within {self.pause_limit / 3600:.0f} h: aborted", self.clock())
                    return "abort"
            self.sleep(self.poll)

    def _aborting(self, rollout_id: int) -> bool:
        with self.sessions() as s:
            r = _get(s, rollout_id)
            return r.control == "abort" or r.state in ENDED

    # -------------------------------------------------------------- one batch

    def _batch(self, rollout_id: int, hosts: list[str]) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        lock = threading.Lock()

        def one(host: str) -> None:
            outcome = self._host(rollout_id, host)
            with lock:
                outcomes[host] = outcome

        if len(hosts) == 1:
            one(hosts[0])
        else:
            threads = [threading.Thread(target=one, args=(h,), name=f"rollout-{rollout_id}-{h}", daemon=True)
                       for h in hosts]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return {h: outcomes.get(h, NOT_ATTEMPTED) for h in hosts}

    def _host(self, rollout_id: int, host: str) -> str:
        if self._aborting(rollout_id):
            return NOT_ATTEMPTED  # recorded with the rest at the end
        reason = self.gate(host) if self.gate is not None else None
        if reason is not None:
            with self.sessions() as s:
                _set_host(s, rollout_id, host, outcome=NOT_STARTED, note=reason)
            self.on_event(f"rollout {rollout_id}: {host}: not started: {reason}")
            return NOT_STARTED

        def started(run_id: int) -> None:
            with self.sessions() as s:
                _set_host(s, rollout_id, host, run_id=run_id, outcome=STARTED)

        try:
            result = self.run_host(host, started)
        except Exception as exc:  # the run's own record says more; the rollout must still end
            result = f"{type(exc).__name__}: {exc}"
        with self.sessions() as s:
            if isinstance(result, str):
                _set_host(s, rollout_id, host, outcome=REFUSED, note=result[:2000])
                outcome = REFUSED
            else:
                _set_host(s, rollout_id, host, run_id=result.id, outcome=result.state,
                          note=(result.error or "")[:2000] if result.state != "SUCCEEDED" else "")
                # a run an operator aborted (then rolled back) is no failure of the release: it spends
                # no budget and halts no window (the rollout's own abort stops the rest)
                outcome = ABORTED if result.aborted_at is not None else result.state
        return outcome

    # -------------------------------------------------------------- the end

    def _end(self, rollout_id: int, end: str, reason: str) -> RolloutSummary:
        now = self.clock()
        with self.sessions() as s:
            r = _get(s, rollout_id)
            if r.state in ENDED:  # reaped meanwhile (this driver was silent too long): that stands
                return summary(s, rollout_id)
            for row in s.scalars(select(RolloutHost).where(RolloutHost.rollout_id == rollout_id,
                                                           RolloutHost.outcome.in_((PENDING, STARTED)))):
                row.outcome = NOT_ATTEMPTED
            r.state, r.finished_at = end, now
            _note(r, f"{end}{': ' + reason if reason else ''}", now)
            s.flush()
            if end == STOPPED:
                r.incident_id = self.incident(s, summary(s, rollout_id), reason)
        with self.sessions() as s:
            done = summary(s, rollout_id)
        self.on_event(f"rollout {rollout_id}: {end}{': ' + reason if reason else ''}")
        return done
