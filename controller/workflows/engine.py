"""The per-host update state machine: drives a run from its recorded state to a final state.

Every transition is written to the store before its action starts (``state``, ``phase_status =
running``) and after it ends (``phase_status = done``); every step gets a timeline row before it
runs and its result after. That record is what :meth:`Engine.reconcile` reads after a crash:

* LOCK / PREFLIGHT (read-only)        → start again from LOCK;
* BACKUP / BACKUP_VERIFY              → redo the backup phase (it begins by discarding a partial one);
* UPDATE (no recorded outcome)        → ROLLBACK (when in doubt, roll back);
* VERIFY (read-only)                  → verify again;
* ROLLBACK / ROLLBACK_VERIFY          → continue as a rollback (rollback steps are idempotent);
* ROLLBACK_FAILED                     → QUARANTINED;
* an outcome decided but not recorded → finish it (secrets captured again, ``finally`` steps,
  unlock, incident).

Release holds (:mod:`controller.workflows.releases`): once the playbook's release key is known
(after PREFLIGHT, or after UPDATE for a key only the update reveals) a held release ends the run
SKIPPED before anything changed, or rolls the update back with reason "release held"; a run that
ends ROLLED_BACK or QUARANTINED holds its release for the fleet and its incident says so.

A later rollback (:mod:`controller.workflows.later`) runs LOCK → PREFLIGHT (secrets captured again,
then the playbook's ``rollback_later.check``) → ROLLBACK → ROLLBACK_VERIFY with ``{{ run_id }}`` the
earlier run's id; after a crash in LOCK/PREFLIGHT it starts that way again, never forward.

An operator's abort (:mod:`controller.workflows.aborts`) is read at every step boundary of the
forward path, never mid-step: before UPDATE it ends the run ABORTED after its ``finally`` steps and
the unlock; from UPDATE on it rolls back with reason "aborted by <who>" (the release is not held).

Before resuming, the lock file is re-taken (it names the run) and values captured by preflight that
were not stored (secrets) are captured again by rerunning those read-only steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from sqlalchemy.orm import Session

from controller.redact import Redactor
from controller.workflows import aborts, releases
from controller.workflows import later as later_runs
from controller.workflows import runs as store
from controller.workflows.errors import ExecutorError, HostKeyError
from controller.workflows.executor import Command, Executor
from controller.workflows.loader import load_playbook, resolve_variables
from controller.workflows.outcomes import IncidentRequest, IncidentSink, RunFacts, incident_for
from controller.workflows.playbook import FailureIncident, Phase, Playbook
from controller.workflows.runs import RunSummary, SessionFactory
from controller.workflows.state import PHASE_OF, TERMINAL, RunState, check_transition
from controller.workflows.steps.base import HealthSource, Step, StepContext, StepOutcome, run_step
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.run import RunAction
from controller.workflows.template import Value, render_plain, render_shell

S = RunState
FORWARD = (S.LOCK, S.PREFLIGHT, S.BACKUP, S.BACKUP_VERIFY, S.UPDATE, S.VERIFY)
RESUME_AT = {S.LOCK: S.LOCK, S.PREFLIGHT: S.LOCK, S.BACKUP: S.BACKUP, S.BACKUP_VERIFY: S.BACKUP,
             S.UPDATE: S.ROLLBACK, S.VERIFY: S.VERIFY, S.ROLLBACK: S.ROLLBACK, S.ROLLBACK_VERIFY: S.ROLLBACK}
LOCK_TIMEOUT = 30.0


@dataclass
class _Run:
    """The in-memory side of one run while the engine drives it."""

    id: int
    host: str
    playbook: Playbook
    executor: Executor
    values: dict[str, Value]
    redact: Redactor
    dry_run: bool
    state: RunState
    captured: dict[str, Any] = field(default_factory=dict)
    backup_started: bool = False
    failed_step: str | None = None
    failed_output: str = ""
    errors: list[str] = field(default_factory=list)
    host_key_problem: bool = False
    lock_token: str = ""
    later: later_runs.RollbackOf | None = None  # a later rollback of that run (`runs rollback`)
    release: str = ""  # the release this run installs, once known
    http: httpx.Client | None = None  # made at the run's first http step when the engine has none
    aborted_by: str | None = None  # an operator's abort, once the engine has acted on it

    def http_client(self) -> httpx.Client:
        """One client for the run's HTTP checks: TLS verified; its CA store is loaded once (that costs
        0.1-0.3 s per client), and no connection is kept between checks (each check connects afresh)."""
        if self.http is None:
            self.http = httpx.Client(verify=True, limits=httpx.Limits(max_keepalive_connections=0))
        return self.http


class Engine:
    def __init__(self, sessions: SessionFactory, *, incidents: IncidentSink, http: httpx.Client | None = None,
                 health: HealthSource | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.sessions = sessions
        self.incidents = incidents
        self.http = http  # None: one client per run (TLS verified), see _Run.http_client
        self.health = health
        self.clock = clock
        self.sleep = sleep

    # ------------------------------------------------------------------ entry points

    def start(self, playbook: Playbook, host: str, overrides: Mapping[str, Value], *,
              dry_run: bool = False, started_by: str = "") -> int:
        """Create the run (lease taken) or raise RunRefused. Nothing is done on the host yet."""
        values = resolve_variables(playbook, overrides)
        stored = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()
                  if not _is_secret(playbook, k)}
        return store.create_run(self.sessions, host=host, playbook=playbook.name,
                                playbook_path=playbook.source, variables=stored, dry_run=dry_run,
                                now=self.clock(), started_by=started_by)

    def run(self, playbook: Playbook, host: str, executor: Executor, overrides: Mapping[str, Value], *,
            dry_run: bool = False) -> RunSummary:
        run_id = self.start(playbook, host, overrides, dry_run=dry_run)
        return self.execute(run_id, playbook, executor, secrets=self.secrets(playbook, overrides))

    @staticmethod
    def secrets(playbook: Playbook, overrides: Mapping[str, Value]) -> dict[str, Value]:
        """The secret variables' values: kept in memory for the run, never stored."""
        return {k: v for k, v in resolve_variables(playbook, overrides).items() if _is_secret(playbook, k)}

    def execute(self, run_id: int, playbook: Playbook, executor: Executor, *,
                secrets: Mapping[str, Value] | None = None) -> RunSummary:
        """Drive a run from its recorded state to a final state (a fresh run, or one left by a crash)."""
        r = self._load(run_id, playbook, executor, secrets or {})
        try:
            return self._execute(r, run_id)
        finally:
            if r.http is not None:
                r.http.close()

    def _execute(self, r: _Run, run_id: int) -> RunSummary:
        with self.sessions() as s:
            row = store.get_run(s, run_id)
            outcome = RunState(row.outcome) if row.outcome else None
            fresh = row.state == S.LOCK and not store.summary(s, run_id).timeline
        if r.state in TERMINAL:
            return self._summary(run_id)
        if outcome is not None:
            # The `finally` steps may need secrets captured in preflight (the 1C playbook unlocks
            # the infobase with its password): capture them again, as a resumed run does.
            if r.backup_started:
                self._recapture(r)
            return self._finish(r, outcome)
        if r.later is not None and r.state in (S.LOCK, S.PREFLIGHT):
            return self._drive_later(r, resumed=not fresh)
        if fresh:
            return self._drive(r, S.LOCK)
        return self._resume(r)

    def reconcile(self, executor_for: Callable[[str], Executor],
                  playbook_for: Callable[[str], Playbook] = load_playbook) -> list[RunSummary]:
        """On controller start: bring every unfinished run to a final state from the real host state."""
        with self.sessions() as s:
            pending = [(i, store.get_run(s, i).host, store.get_run(s, i).playbook_path)
                       for i in store.unfinished_runs(s)]
        results = []
        for run_id, host, path in pending:
            executor = executor_for(host)
            try:
                results.append(self.execute(run_id, playbook_for(path), executor))
            finally:
                executor.close()
        return results

    # ------------------------------------------------------------------ driving

    def _drive(self, r: _Run, start: RunState, *, resumed: bool = False) -> RunSummary:
        if start in FORWARD:
            for state in FORWARD[FORWARD.index(start):]:
                if self._aborted(r):
                    if r.state in aborts.CHANGING:
                        break
                    return self._finish(r, S.ABORTED)
                if state is S.VERIFY and self._release_held(r, Phase.UPDATE):
                    break
                self._enter(r, state, check=not resumed)
                resumed = False
                ok = self._lock(r) if state is S.LOCK else self._phase(r, state)
                if not ok:
                    if state in (S.UPDATE, S.VERIFY):
                        break
                    return self._finish(r, S.FAILED if r.aborted_by is None else S.ABORTED)
                self._done(r)
                if state is S.PREFLIGHT and self._release_held(r, Phase.PREFLIGHT):
                    return self._finish(r, S.SKIPPED)
                if state is S.PREFLIGHT and r.dry_run:
                    return self._finish(r, S.SUCCEEDED)
            else:
                if not self._aborted(r):  # the boundary after the last verify step
                    return self._finish(r, S.SUCCEEDED)
        for state in (S.ROLLBACK, S.ROLLBACK_VERIFY):
            self._enter(r, state, check=not resumed)
            resumed = False
            if not self._phase(r, state):
                self._enter(r, S.ROLLBACK_FAILED)
                return self._finish(r, S.QUARANTINED)
            self._done(r)
        return self._finish(r, S.ROLLED_BACK)

    def _drive_later(self, r: _Run, *, resumed: bool = False) -> RunSummary:
        """A later rollback: lock, read the secrets again, check the earlier backup is kept, roll back."""
        assert r.later is not None and r.playbook.rollback_later is not None
        if resumed:
            self._note(r, f"controller restarted: rollback of run {r.later.of_run_id} found in {r.state}, "
                          "starting its checks again")
        if self._aborted(r):
            return self._finish(r, S.ABORTED)
        self._enter(r, S.LOCK, check=False)
        if not self._lock(r):
            return self._finish(r, S.FAILED)
        self._done(r)
        if self._aborted(r):
            return self._finish(r, S.ABORTED)
        self._enter(r, S.PREFLIGHT)
        if not (self._recapture(r) and self._step(r, Phase.PREFLIGHT, r.playbook.rollback_later.check)):
            return self._finish(r, S.FAILED)
        self._done(r)
        if self._aborted(r):
            return self._finish(r, S.ABORTED)
        return self._drive(r, S.ROLLBACK)

    def _release_held(self, r: _Run, after: Phase) -> bool:
        """Whether the run's release, known once ``after`` is done, is held (recorded on the run)."""
        if not r.playbook.release or r.later is not None:
            return False
        r.release = r.release or releases.release_key(r.playbook, r.values, after)
        if not r.release:
            return False
        with self.sessions() as s:
            found = releases.held(s, r.playbook.name, r.release)
            if found is None:
                return False
            after_run = f", after run {found.run_id}" if found.run_id else ""
            message = (f"release held: {r.playbook.name} release {r.release} is held for the fleet (hold "
                       f"{found.id} by {found.held_by}{after_run}); "
                       f"`boxkeeper releases release {found.id}` allows it again")
            store.add_entry(s, r.id, kind="note", phase=r.state.value, name=message, status="failed",
                            now=self.clock())
            r.errors.append(message)
            row = store.get_run(s, r.id)
            row.error = "; ".join(r.errors)[-4000:]
            if after is Phase.UPDATE and r.failed_step is None:
                r.failed_step = row.failed_step = "update/release held"
                r.failed_output = message
        return True

    def _resume(self, r: _Run) -> RunSummary:
        if r.state is S.ROLLBACK_FAILED:
            return self._finish(r, S.QUARANTINED)
        start = RESUME_AT[r.state]
        self._note(r, f"controller restarted: run found in {r.state}, continuing at {start}")
        if start is not S.LOCK and not (self._lock(r) and self._recapture(r)):
            if start is S.BACKUP:
                return self._finish(r, S.FAILED)
            if start is S.VERIFY:
                start = S.ROLLBACK
            else:  # cannot even start the rollback
                if r.state not in (S.ROLLBACK, S.ROLLBACK_VERIFY):
                    self._enter(r, S.ROLLBACK)
                self._enter(r, S.ROLLBACK_FAILED)
                return self._finish(r, S.QUARANTINED)
        return self._drive(r, start, resumed=True)

    def _recapture(self, r: _Run) -> bool:
        """Rerun the read-only preflight steps whose captured values were not stored (secrets)."""
        for step in r.playbook.steps(Phase.PREFLIGHT):
            missing = [c for c in step.action.captures() if f"captured.{c.name}" not in r.values]
            if missing and not self._step(r, Phase.PREFLIGHT, step):
                return False
        return True

    def _phase(self, r: _Run, state: RunState) -> bool:
        phase = PHASE_OF[state]
        after = "rollback" if state is S.ROLLBACK_VERIFY else "update"
        for step in r.playbook.steps(phase):
            if phase is Phase.VERIFY and after not in step.after:
                continue
            if state in FORWARD and self._aborted(r):
                return False
            if not self._step(r, phase, step):
                return False
        return True

    def _aborted(self, r: _Run) -> bool:
        """At a step boundary of the forward path: whether an operator asked to abort (recorded on the
        run by :func:`controller.workflows.aborts.request_abort`); the first time, it is taken: the
        timeline says by whom and what follows, and the run's failed step and error name it."""
        if r.aborted_by is not None:
            return True
        if r.state not in aborts.ABORTABLE:
            return False
        with self.sessions() as s:
            row = store.get_run(s, r.id)
            who, asked = row.abort_requested_by, row.abort_requested_at
            if who is None:
                return False
            row.aborted_at = self.clock()
            then = ("the update phase had begun: rolling back" if r.state in aborts.CHANGING else
                    "nothing on the box has changed: final steps, then ABORTED")
            message = f"aborted by {who} (asked {self.clock() - (asked or self.clock()):.0f}s ago): {then}"
            store.add_entry(s, r.id, kind="note", phase=r.state.value, name=message, status="failed",
                            now=self.clock())
            r.errors.append(message)
            if r.failed_step is None:
                r.failed_step = row.failed_step = f"{r.state.value.lower()}/aborted by {who}"
                r.failed_output = message
            row.error = "; ".join(r.errors)[-4000:]
        r.aborted_by = who
        return True

    def _lock(self, r: _Run) -> bool:
        lock = render_shell(r.playbook.lock_file, r.values)
        token = render_shell("{{ t }}", {"t": r.lock_token})
        text = (f'if [ -e {lock} ]; then held="$(cat {lock})"; [ "$held" = {token} ] && exit 0; '
                f'echo "host is locked by $held"; exit 3; fi; set -o noclobber; echo {token} > {lock}')
        step = Step("take the host lock file", _rendered(text), LOCK_TIMEOUT)
        return self._step(r, Phase.PREFLIGHT, step, phase_name="lock", raw=True)

    def _unlock(self, r: _Run) -> None:
        lock = render_shell(r.playbook.lock_file, r.values)
        token = render_shell("{{ t }}", {"t": r.lock_token})
        text = f'if [ "$(cat {lock} 2>/dev/null)" = {token} ]; then rm -f {lock}; fi'
        self._step(r, Phase.FINALLY, Step("remove the host lock file", _rendered(text), LOCK_TIMEOUT),
                   phase_name="unlock", raw=True)

    # ------------------------------------------------------------------ one step

    def _step(self, r: _Run, phase: Phase, step: Step, *, phase_name: str | None = None,
              raw: bool = False) -> bool:
        name = phase_name or phase.value
        with self.sessions() as s:
            entry = store.add_entry(s, r.id, kind=step.kind, phase=name, name=step.name, status="running",
                                    now=self.clock())
        http = self.http if self.http is not None or not isinstance(step.action, HttpAction) \
            else r.http_client()
        ctx = StepContext(r.host, r.executor, {} if raw else r.values, r.redact, http, self.health,
                          self.clock, self.sleep, r.playbook.secret_names())
        status = "failed"
        try:
            if raw:
                assert isinstance(step.action, RunAction)
                text = step.action.command
                result = r.executor.run(Command(text, r.redact(text)), step.timeout)
                ok = result.exit_code == 0
                outcome = StepOutcome(ok, result.command_redacted, result.exit_code, result.duration,
                                      r.redact(result.stdout_tail), r.redact(result.stderr_tail),
                                      "" if ok else f"exit code {result.exit_code}")
            else:
                outcome = run_step(step, ctx)
            status = "ok" if outcome.ok else "failed"
        except ExecutorError as exc:
            status = "error"
            r.host_key_problem = r.host_key_problem or isinstance(exc, HostKeyError)
            outcome = StepOutcome(False, None, message=r.redact(str(exc)))
        except KeyError as exc:
            outcome = StepOutcome(False, None, message=f"no value for {exc} (secret --var values are not "
                                                       "stored; give it again or use a default)")
        captures = r.playbook.captures()
        for key, value in outcome.captured.items():
            r.values[f"captured.{key}"] = value
            if not captures[key].secret:
                r.captured[key] = value
        if not outcome.ok:
            r.errors.append(f"{name}/{step.name}: {outcome.message}")
            if r.failed_step is None:
                r.failed_step = f"{name}/{step.name}"
                # What the step saw: a command's output tails, or for an http/testinfra/wait step
                # (no output of its own) the reason it failed, e.g. "HTTP 500 from ...".
                output = (outcome.stdout + "\n" + outcome.stderr).strip()
                r.failed_output = (output or outcome.message)[-2000:]
        with self.sessions() as s:
            store.finish_entry(s, entry, status=status, now=self.clock(), command=outcome.command,
                               exit_code=outcome.exit_code, duration=outcome.duration, stdout=outcome.stdout,
                               stderr=outcome.stderr, message=outcome.message)
            row = store.get_run(s, r.id)
            row.captured, row.failed_step = dict(r.captured), r.failed_step
            row.error = "; ".join(r.errors)[-4000:] or None
            row.updated_at = self.clock()
        return outcome.ok

    # ------------------------------------------------------------------ persistence

    def _enter(self, r: _Run, state: RunState, *, check: bool = True) -> None:
        if check and state is not r.state:
            check_transition(r.state, state)
        label = f"{r.state} → {state}" if state is not r.state else f"start → {state}"
        with self.sessions() as s:
            row = store.get_run(s, r.id)
            row.state, row.phase_status, row.updated_at = state.value, "running", self.clock()
            if state is S.BACKUP or (state is S.ROLLBACK and r.later is not None):
                row.backup_started = r.backup_started = True
            store.add_entry(s, r.id, kind="transition", phase=state.value, name=label, status="ok",
                            now=self.clock())
        r.state = state

    def _done(self, r: _Run) -> None:
        with self.sessions() as s:
            row = store.get_run(s, r.id)
            row.phase_status, row.updated_at = "done", self.clock()

    def _note(self, r: _Run, message: str) -> None:
        with self.sessions() as s:
            store.add_entry(s, r.id, kind="note", phase=r.state.value, name=message, status="ok",
                            now=self.clock())

    def _finish(self, r: _Run, outcome: RunState) -> RunSummary:
        with self.sessions() as s:
            row = store.get_run(s, r.id)
            row.outcome = outcome.value
        cleanup_ok = True
        r.values["outcome"] = outcome.value  # for finally steps (e.g. prune old backups only on success)
        if r.backup_started:
            for step in r.playbook.steps(Phase.FINALLY):
                cleanup_ok = self._step(r, Phase.FINALLY, step) and cleanup_ok
        self._unlock(r)
        check_transition(r.state, outcome)
        facts = RunFacts(r.id, r.host, r.playbook.name, outcome.value, r.failed_step, r.failed_output,
                         "; ".join(r.errors) or None, dict(r.captured), self._backup_location(r),
                         r.playbook.rollback_notice, r.host_key_problem, self._failure_incident(r),
                         r.later.of_run_id if r.later else None, r.later.requested_by if r.later else None,
                         r.aborted_by)
        request = incident_for(facts)
        if request is None and not cleanup_ok:
            ended = "succeeded" if outcome is S.SUCCEEDED else f"ended {outcome}"
            request = IncidentRequest(r.host, f"workflow:run:{r.id}", "release_cleanup_failed", "warning",
                                      f"{r.playbook.name} on {r.host} (run {r.id}) {ended} but a final "
                                      f"step failed: {facts.error}", {"run_id": r.id})
        with self.sessions() as s:
            row = store.get_run(s, r.id)
            row.state, row.phase_status = outcome.value, "done"
            row.finished_at = row.updated_at = self.clock()
            store.add_entry(s, r.id, kind="transition", phase=outcome.value, name=f"{r.state} → {outcome}",
                            status="ok" if outcome is S.SUCCEEDED else "failed", now=self.clock())
            store.release_lease(s, r.host, r.id)
            if outcome is S.QUARANTINED:
                store.quarantine(s, r.host, r.id, f"rollback failed in run {r.id}", self.clock())
            if request is not None:
                request = self._hold_release(s, r, outcome, request)
                self.incidents.open(s, request)
        r.state = outcome
        return self._summary(r.id)

    def _hold_release(self, s: Session, r: _Run, outcome: RunState,
                      request: IncidentRequest) -> IncidentRequest:
        """A rolled-back (or quarantined) release is held for the fleet; its incident says so."""
        if outcome not in (S.ROLLED_BACK, S.QUARANTINED) or r.host_key_problem or r.dry_run \
                or r.aborted_by is not None \
                or r.playbook.failure_incident is not None or not r.playbook.release:
            return request
        key = r.release or releases.release_key(r.playbook, r.values)
        if not key:
            note = ("no release identity was recorded (the update stopped before its key was known): "
                    "nothing is held")
            return replace(request, summary=f"{request.summary}. {note}")
        reason = (f"run {r.id} on {r.host} ended {outcome}" if r.later is None else
                  f"run {r.later.of_run_id} on {r.host} rolled back later by {r.later.requested_by} "
                  f"(run {r.id})")
        hold, new = releases.hold(s, playbook=r.playbook.name, release=key, actor=f"run {r.id}",
                                  now=self.clock(), reason=reason, run_id=r.id, host=r.host)
        verb = "is now held" if new else "is held"
        note = f"release {key} {verb} for the fleet; `boxkeeper releases release {hold.id}` to allow it again"
        store.add_entry(s, r.id, kind="note", phase=outcome.value, name=note, status="ok", now=self.clock())
        return replace(request, summary=f"{request.summary}. {note}",
                       details={**request.details, "release": key, "hold_id": hold.id})

    def _backup_location(self, r: _Run) -> str:
        return _render_text(r.playbook.backup_location, r.values)

    def _failure_incident(self, r: _Run) -> FailureIncident | None:
        fi = r.playbook.failure_incident
        return None if fi is None else replace(fi, summary=_render_text(fi.summary, r.values))

    def _load(self, run_id: int, playbook: Playbook, executor: Executor,
              secrets: Mapping[str, Value]) -> _Run:
        with self.sessions() as s:
            row = store.get_run(s, run_id)
            values: dict[str, Value] = {k: tuple(v) if isinstance(v, list) else v
                                        for k, v in row.variables.items()}
            captured = dict(row.captured)
            r = _Run(run_id, row.host, playbook, executor, values, Redactor(), row.dry_run,
                     RunState(row.state), captured, row.backup_started, row.failed_step,
                     lock_token=row.lock_token, later=later_runs.rollback_of(s, run_id),
                     aborted_by=row.abort_requested_by if row.aborted_at is not None else None)
        for var in playbook.variables:
            if var.secret:
                value = secrets.get(var.name, var.default)
                if value is not None:
                    r.values[var.name] = value
                    r.redact.add(str(value))
        # A later rollback restores the earlier run's backup: its paths are that run's.
        r.values.update({"run_id": r.later.of_run_id if r.later else run_id, "host": r.host})
        r.values.update({f"captured.{k}": v for k, v in captured.items()})
        return r

    def _summary(self, run_id: int) -> RunSummary:
        with self.sessions() as s:
            return store.summary(s, run_id)


def _render_text(template: str, values: Mapping[str, Value]) -> str:
    """A text template for people (incidents): as it is when a value is missing (e.g. a secret)."""
    try:
        return render_plain(template, values) if template else ""
    except KeyError:
        return template


def _rendered(command: str) -> RunAction:
    """A ``run`` step of a command the engine wrote and rendered itself (its values are quoted
    already, so the template rules of a playbook's commands do not apply)."""
    return RunAction.model_construct(command=command)


def _is_secret(playbook: Playbook, name: str) -> bool:
    var = playbook.variable(name)
    return bool(var and var.secret)
