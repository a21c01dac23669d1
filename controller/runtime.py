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
from collections.abc import Callable, Mapping
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
from controller.workflows.runs import RunSummary
from controller.workflows.ssh import SSHTarget
from controller.workflows.template import Value
from controller.workflows.windows import WindowScheduler

log = logging.getLogger("boxkeeper.workflows")

#: A run's host is muted this long at most; the mute is removed when the run ends, and lapses by
#: itself if the controller dies mid-run (reconciliation then decides, not the alerts).
RUN_MUTE_SECONDS = 6 * 3600

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

    # ------------------------------------------------------------------ building blocks

    def engine(self) -> Engine:
        return Engine(self.db.session, incidents=ServiceIncidents(), health=StoreHealth(self.db))

    def executor(self, host: str) -> Executor:
        if self._executors is not None:
            return self._executors(host)
        return executor_for(host_config(self.cfg, host), self.known_hosts)

    def playbook(self, name: str) -> Playbook:
        return load_playbook(find_playbook(name, self.playbooks_dir))

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
        names: set[str] = set()
        for path in sorted(self.playbooks_dir.glob("*.yaml")):
            try:
                names.update(v.name for v in load_playbook(path).variables)
            except ConfigError:
                continue
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
            dry_run: bool = False, site: str | None = None) -> RunSummary:
        """Run to a final state in this thread. Raises RunRefused when the host is busy/quarantined,
        ConfigError (nothing ran) when a variable is wrong or missing."""
        run_id, playbook, executor, engine, secrets = self._begin(playbook_name, host, given, dry_run, site)
        owner = None if dry_run else self.silence(host, Owner.run(run_id), time.time() + RUN_MUTE_SECONDS,
                                                  f"update run {run_id}")
        try:
            return engine.execute(run_id, playbook, executor, secrets=secrets)
        finally:
            executor.close()
            self.lift(owner)

    def start(self, playbook_name: str, host: str, given: Mapping[str, str], *,
              dry_run: bool = False, site: str | None = None) -> int:
        """Take the host's lease now (RunRefused if it can't) and drive the run in a thread."""
        run_id, playbook, executor, engine, secrets = self._begin(playbook_name, host, given, dry_run, site)
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

        thread = threading.Thread(target=drive, name=f"run-{run_id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return run_id

    def _begin(self, playbook_name: str, host: str, given: Mapping[str, str], dry_run: bool,
               site: str | None) -> tuple[int, Playbook, Executor, Engine, Mapping[str, Value]]:
        playbook = self.playbook(playbook_name)
        overrides = self.overrides(host, playbook, given, site=site)
        executor = self.executor(host)
        engine = self.engine()
        try:
            run_id = engine.start(playbook, host, overrides, dry_run=dry_run)
        except BaseException:
            executor.close()
            raise
        return run_id, playbook, executor, engine, engine.secrets(playbook, overrides)

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
            return self.run(window.playbook, host, dict(window.variables))
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
            self._windows = self.window_scheduler()
            self._windows.start()

        thread = threading.Thread(target=begin, name="workflows-start", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop_service(self, timeout: float = 5.0) -> None:
        if self._windows is not None:
            self._windows.stop()
            self._windows = None
        for thread in self._threads:
            thread.join(timeout)
