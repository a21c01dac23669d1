"""From the controller config to running update workflows: playbooks, SSH executors, the engine.

One place that the CLI (``boxkeeper update run``), the API (``POST /api/v1/runs``) and ``boxkeeper
serve`` (crash reconciliation at start, the update-window scheduler) all go through, so that a run
started any of these ways uses the same pinned host keys, the same playbooks and the same engine.
While a run changes a host, the host is silenced by that run (:mod:`controller.alerting.silences`,
owner ``run <id>``); the run's own verification decides, and only its own silence is lifted at
its end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from controller.alerting import silences
from controller.alerting.silences import Owner
from controller.config import ControllerConfig, HostConfig
from controller.errors import ConfigError
from controller.runvars import run_values, undeclared
from controller.store.db import Database
from controller.workflows import later
from controller.workflows.engine import Engine
from controller.workflows.errors import RunRefused
from controller.workflows.executor import Executor
from controller.workflows.executors import build_executor
from controller.workflows.health import StoreHealth
from controller.workflows.loader import find_playbook, load_playbook
from controller.workflows.models import UpdateWindow
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.playbook import Playbook
from controller.workflows.rollouts import RolloutDriver, RolloutSummary, create_rollout, make_plan, reap
from controller.workflows.runs import RunSummary
from controller.workflows.ssh import SSHTarget
from controller.workflows.template import Value
from controller.workflows.windows import WindowScheduler

log = logging.getLogger("boxkeeper.workflows")

#: A run's host is muted this long at most; the mute is removed when the run ends, and lapses by
#: itself if the controller dies mid-run (reconciliation then decides, not the alerts).
RUN_MUTE_SECONDS = 6 * 3600
#: how often `serve` looks for rollouts whose driving process died
REAP_SECONDS = 60

PLAYBOOKS_ENV = "BOXKEEPER_PLAYBOOKS"
SHIPPED_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"


def host_config(cfg: ControllerConfig, name: str) -> HostConfig:
    """The host's config, which must have an SSH address for any workflow."""
    found = cfg.host(name)
    if found is None:
        raise ConfigError(cfg.source, f"clients[].hosts[name={name}]", "the host in the controller config")
    host = found[1]
    if host.ssh_address is None:
        raise ConfigError(cfg.source, f"clients[].hosts[name={name}].ssh.address",
                          "an SSH address (host:port)")
    return host


def hosts_of(cfg: ControllerConfig, target: str) -> list[str]:
    """A window's target: ``client:NAME`` (every host of the client) or one host name."""
    if target.startswith("client:"):
        client = cfg.client(target.removeprefix("client:"))
        return [h.name for h in client.hosts] if client else []
    return [target]


def known_hosts_file(cfg: ControllerConfig, override: str | None = None) -> str:
    """The pinned host keys: ``--known-hosts``, else ``<state_dir>/known_hosts``."""
    return override or str(Path(cfg.state_dir) / "known_hosts")


def executor_for(host: HostConfig, known_hosts: str) -> Executor:
    """The host's executor (the kinds of :mod:`controller.workflows.executors`; hosts are reached
    over SSH with pinned keys)."""
    assert host.ssh is not None
    address, port = host.ssh.address
    return build_executor(SSHTarget(host.name, address, port, host.ssh.user or "root", host.ssh.key_file,
                                    host.ssh.jump, known_hosts))


class WorkflowRuntime:
    def __init__(self, cfg: ControllerConfig, db: Database, *, known_hosts: str | None = None,
                 playbooks_dir: str | None = None,
                 executors: Callable[[str], Executor] | None = None) -> None:
        self.cfg = cfg
        self.db = db
        self.known_hosts = known_hosts_file(cfg, known_hosts)
        self.playbooks_dir = Path(playbooks_dir or os.environ.get(PLAYBOOKS_ENV) or SHIPPED_PLAYBOOKS)
        self._executors = executors  # None: SSH with the pinned keys (tests pass a FakeExecutor)
        self._threads: list[threading.Thread] = []
        self._windows: WindowScheduler | None = None
        # loading every playbook costs ~0.2 s each; a rollout asks once per host (bench/rollout_bench.py)
        self._cache_lock = threading.Lock()
        self._playbooks: dict[tuple[str, int, int], Playbook] = {}
        self._declared: tuple[tuple[tuple[str, int, int], ...], frozenset[str]] | None = None

    # ------------------------------------------------------------------ building blocks

    def engine(self) -> Engine:
        return Engine(self.db.session, incidents=ServiceIncidents(), health=StoreHealth(self.db))

    def executor(self, host: str) -> Executor:
        if self._executors is not None:
            return self._executors(host)
        return executor_for(host_config(self.cfg, host), self.known_hosts)

    def playbook(self, name: str) -> Playbook:
        """The playbook, loaded once per file version (a rollout's runs share it; playbooks are frozen)."""
        path = find_playbook(name, self.playbooks_dir)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._cache_lock:
            found = self._playbooks.get(key)
        if found is None:
            found = load_playbook(path)
            with self._cache_lock:
                self._playbooks[key] = found
        return found

    def overrides(self, host: str, playbook: Playbook, given: Mapping[str, str], *,
                  site: str | None = None) -> dict[str, Value]:
        """The run's values before the playbook's defaults: the inventory's (host, then site),
        then ``--var`` (controller/runvars.py); ConfigError when one is wrong or a required one
        is missing."""
        host_config(self.cfg, host)
        return run_values(self.cfg, host, playbook, given, site=site,
                          declared_elsewhere=self.declared_variables())

    def declared_variables(self) -> frozenset[str]:
        """Every variable some playbook of the playbooks dir declares (a host's ``vars`` may name
        only these; a playbook that does not load is left out here and refused when it is run)."""
        paths = sorted(self.playbooks_dir.glob("*.yaml"))
        key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        with self._cache_lock:
            if self._declared is not None and self._declared[0] == key:
                return self._declared[1]
        names: set[str] = set()
        for path in paths:
            try:
                names.update(v.name for v in load_playbook(path).variables)
            except ConfigError:
                continue
        with self._cache_lock:
            self._declared = (key, frozenset(names))
        return frozenset(names)

    # ------------------------------------------------------------------ alerts during a run

    def silence(self, host: str, owner: Owner, until: float, reason: str) -> Owner | None:
        """Silence the host's notifications for ``owner`` (None: a host without alerts)."""
        try:
            with self.db.session() as s:
                silences.silence(s, host=host, until=until, reason=reason, owner=owner, now=time.time())
        except LookupError:
            return None  # a host the inventory does not know has no alerts to mute
        return owner

    def lift(self, owner: Owner | None, host: str | None = None) -> None:
        """End the silences ``owner`` made (an operator's stay)."""
        if owner is not None:
            with self.db.session() as s:
                silences.lift(s, owner, host=host)

    # ------------------------------------------------------------------ runs

    def run(self, playbook_name: str, host: str, given: Mapping[str, str], *,
            dry_run: bool = False, site: str | None = None, started_by: str = "",
            on_start: Callable[[int], None] | None = None) -> RunSummary:
        """Run to a final state in this thread. Raises RunRefused when the host is busy/quarantined,
        ConfigError (nothing ran) when a variable is wrong or missing. ``on_start`` gets the run's id
        as soon as the run exists (to follow it while it goes)."""
        run_id, playbook, executor, engine, secrets = self._begin(playbook_name, host, given, dry_run, site,
                                                                  started_by)
        owner = None if dry_run else self.silence(host, Owner.run(run_id), time.time() + RUN_MUTE_SECONDS,
                                                  f"update run {run_id}")
        try:
            if on_start is not None:
                on_start(run_id)
            return engine.execute(run_id, playbook, executor, secrets=secrets)
        finally:
            executor.close()
            self.lift(owner)

    def start(self, playbook_name: str, host: str, given: Mapping[str, str], *,
              dry_run: bool = False, site: str | None = None, started_by: str = "") -> int:
        """Take the host's lease now (RunRefused if it can't) and drive the run in a thread."""
        run_id, playbook, executor, engine, secrets = self._begin(playbook_name, host, given, dry_run, site,
                                                                  started_by)
        owner = None if dry_run else self.silence(host, Owner.run(run_id), time.time() + RUN_MUTE_SECONDS,
                                                  f"update run {run_id}")

        def drive() -> None:
            try:
                engine.execute(run_id, playbook, executor, secrets=secrets)
            except Exception:
                log.exception("run %d on %s stopped with an error; `boxkeeper update reconcile` "
                              "finishes it", run_id, host)
            finally:
                executor.close()
                self.lift(owner)

        self._background(drive, f"run-{run_id}")
        return run_id

    def _background(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _begin(self, playbook_name: str, host: str, given: Mapping[str, str], dry_run: bool,
               site: str | None,
               started_by: str) -> tuple[int, Playbook, Executor, Engine, Mapping[str, Value]]:
        playbook = self.playbook(playbook_name)
        overrides = self.overrides(host, playbook, given, site=site)
        executor = self.executor(host)
        engine = self.engine()
        try:
            run_id = engine.start(playbook, host, overrides, dry_run=dry_run, started_by=started_by)
        except BaseException:
            executor.close()
            raise
        return run_id, playbook, executor, engine, engine.secrets(playbook, overrides)

    # ------------------------------------------------------------------ rollouts (many hosts)

    def fleet_hosts(self, *, hosts: Sequence[str] = (), client: str | None = None,
                    everything: bool = False) -> list[str]:
        """The hosts of ``--hosts a,b`` (each must be in the config), ``--client C`` or ``--all``, in
        config order; hosts without an SSH address are left out of ``--client``/``--all``."""
        if hosts:
            for name in hosts:
                host_config(self.cfg, name)
            return list(dict.fromkeys(hosts))
        if client is not None:
            found = self.cfg.client(client)
            if found is None:
                raise ConfigError(self.cfg.source, f"clients[name={client}]",
                                  "a client of the controller config")
            chosen = [h.name for h in found.hosts if h.ssh_address is not None]
        elif everything:
            chosen = [h.name for c in self.cfg.clients for h in c.hosts if h.ssh_address is not None]
        else:
            chosen = []
        if not chosen:
            raise ConfigError(self.cfg.source, "clients[].hosts[].ssh.address",
                              "at least one host with an SSH address for the rollout")
        return chosen

    def client_of(self, hosts: Sequence[str]) -> str | None:
        """The one client all ``hosts`` belong to, else None."""
        clients = {found[0].name for h in hosts if (found := self.cfg.host(h)) is not None}
        return clients.pop() if len(clients) == 1 else None

    def prepare_rollout(self, playbook_name: str, hosts: Sequence[str], given: Mapping[str, str], *,
                        canary: str | None = None, batch: str | int = 1, max_failures: int = 0,
                        started_by: str = "") -> int:
        """Check the playbook and every host's variables (ConfigError before anything runs), then
        record the rollout; returns its id."""
        plan = make_plan(hosts, canary=canary, batch=batch, max_failures=max_failures)
        playbook = self.playbook(playbook_name)
        for host in plan.hosts:
            self.overrides(host, playbook, given)
        with self.db.session() as s:
            return create_rollout(s, plan, playbook=playbook.name, started_by=started_by,
                                  client=self.client_of(plan.hosts), now=time.time())

    def drive_rollout(self, rollout_id: int, playbook_name: str, given: Mapping[str, str], *,
                      dry_run: bool = False, started_by: str = "",
                      on_start: Callable[[int, str], None] | None = None,
                      on_event: Callable[[str], None] = lambda text: None) -> RolloutSummary:
        """Drive a recorded rollout to its end in this thread (its batches' runs in threads)."""

        def run_host(host: str, started: Callable[[int], None]) -> RunSummary | str:
            def begun(run_id: int) -> None:
                started(run_id)
                if on_start is not None:
                    on_start(run_id, host)
            try:
                return self.run(playbook_name, host, given, dry_run=dry_run, started_by=started_by,
                                on_start=begun)
            except (RunRefused, ConfigError) as exc:
                return str(exc)

        return RolloutDriver(self.db.session, run_host=run_host, on_event=on_event).drive(rollout_id)

    def start_rollout(self, playbook_name: str, hosts: Sequence[str], given: Mapping[str, str], *,
                      canary: str | None = None, batch: str | int = 1, max_failures: int = 0,
                      dry_run: bool = False, started_by: str = "") -> int:
        """Record the rollout now (ConfigError if anything is wrong) and drive it in a thread."""
        rollout_id = self.prepare_rollout(playbook_name, hosts, given, canary=canary, batch=batch,
                                          max_failures=max_failures, started_by=started_by)

        def drive() -> None:
            try:
                self.drive_rollout(rollout_id, playbook_name, given, dry_run=dry_run, started_by=started_by)
            except Exception:
                log.exception("rollout %d stopped with an error", rollout_id)

        self._background(drive, f"rollout-{rollout_id}")
        return rollout_id

    # ------------------------------------------------------------------ later rollbacks

    def rollback(self, run_id: int, actor: str) -> RunSummary:
        """``runs rollback ID`` in this thread: RollbackRefused (nothing started) or the rollback run's
        summary (FAILED with the reason when the backup is no longer kept)."""
        rollback_id, host, playbook, executor, engine = self._begin_rollback(run_id, actor)
        owner = self.silence(host, Owner.run(rollback_id),
                             time.time() + RUN_MUTE_SECONDS, f"rollback run {rollback_id}")
        try:
            return engine.execute(rollback_id, playbook, executor)
        finally:
            executor.close()
            self.lift(owner)

    def start_rollback(self, run_id: int, actor: str) -> int:
        """The same in a thread (the API): the rollback run's id."""
        rollback_id, host, playbook, executor, engine = self._begin_rollback(run_id, actor)
        owner = self.silence(host, Owner.run(rollback_id),
                             time.time() + RUN_MUTE_SECONDS, f"rollback run {rollback_id}")

        def drive() -> None:
            try:
                engine.execute(rollback_id, playbook, executor)
            except Exception:
                log.exception("rollback run %d stopped with an error; `boxkeeper update reconcile` "
                              "finishes it", rollback_id)
            finally:
                executor.close()
                self.lift(owner)

        thread = threading.Thread(target=drive, name=f"run-{rollback_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return rollback_id

    def _begin_rollback(self, run_id: int, actor: str) -> tuple[int, str, Playbook, Executor, Engine]:
        with self.db.read_session() as s:
            earlier = later.target_run(s, run_id)
            host, path = earlier.host, earlier.playbook_path
        playbook = load_playbook(path)
        engine = self.engine()
        executor = self.executor(host)
        try:
            rollback_id = later.create(self.db.session, of_run=run_id, playbook=playbook, actor=actor,
                                       now=time.time())
        except BaseException:
            executor.close()
            raise
        return rollback_id, host, playbook, executor, engine

    def reconcile(self) -> list[RunSummary]:
        """Bring every run a controller crash left unfinished to a final state (see DESIGN.md)."""
        return self.engine().reconcile(self.executor)

    # ------------------------------------------------------------------ update windows

    def run_window_host(self, window: UpdateWindow, host: str, ends_at: float) -> RunSummary | str:
        """The host's run in a window, with the same inventory values as ``update run`` (the
        window's variables win, like ``--var``); a refusal is returned as its reason."""
        try:
            return self.run(window.playbook, host, dict(window.variables), started_by=f"window:{window.name}")
        except RunRefused as exc:
            return str(exc)
        except ConfigError as exc:
            log.warning("update window %s: %s not started: %s", window.name, host, exc)
            return f"not started: {exc}"

    def window_scheduler(self) -> WindowScheduler:
        return WindowScheduler(self.db, hosts_of=lambda target: hosts_of(self.cfg, target),
                               run_host=self.run_window_host, incidents=ServiceIncidents(),
                               silence=self.silence, lift=self.lift, is_release=self.is_release)

    def is_release(self, playbook_name: str) -> bool:
        """A playbook whose failures are failed releases (not one that words its own failure incident,
        like the restore drill)."""
        return self.playbook(playbook_name).failure_incident is None

    # ------------------------------------------------------------------ inside `boxkeeper serve`

    def start_service(self) -> None:
        """Reconcile unfinished runs, then schedule update windows (in the background). Host vars
        that no playbook declares are logged now: runs on those hosts will be refused."""
        for problem in undeclared(self.cfg, self.declared_variables()):
            log.warning("%s (runs on this host are refused until it is fixed)", problem)

        def begin() -> None:
            try:
                for run in self.reconcile():
                    log.warning("reconciled run %d on %s after a controller stop: %s",
                                run.id, run.host, run.state)
            except Exception:
                log.exception("reconciling unfinished runs failed; run `boxkeeper update reconcile`")
            self.reap_rollouts()
            self._windows = self.window_scheduler()
            self._windows.start()
            self._windows.scheduler.add_job(self.reap_rollouts, "interval", seconds=REAP_SECONDS,
                                            id="rollouts-reap", jobstore="local", replace_existing=True)

        thread = threading.Thread(target=begin, name="workflows-start", daemon=True)
        self._threads.append(thread)
        thread.start()

    def reap_rollouts(self) -> None:
        """End rollouts whose driving process died (controller/workflows/rollouts.py ``reap``)."""
        try:
            for rollout in reap(self.db.session, now=time.time()):
                log.warning("rollout %d of %s: its driving process stopped; ended STOPPED (incident %s)",
                            rollout.id, rollout.playbook, rollout.incident_id)
        except Exception:
            log.exception("looking for rollouts whose driver stopped failed; trying again in %d s",
                          REAP_SECONDS)

    def stop_service(self, timeout: float = 5.0) -> None:
        if self._windows is not None:
            self._windows.stop()
            self._windows = None
        for thread in self._threads:
            thread.join(timeout)
