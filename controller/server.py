"""``boxkeeper serve``: the API on uvicorn, the monitor (detection + notifications) alongside.

The background side (detection, notifications, run reconciliation, update windows) runs only while
this process is the leader (:mod:`controller.leader`): on PostgreSQL several ``serve`` processes
share one database and one of them leads; on SQLite a second ``serve`` is refused.

uvicorn installs the SIGTERM/SIGINT handlers: a signal stops accepting connections, lets requests
in flight finish, then runs the app's shutdown (which stops the monitor).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from controller import inventory
from controller.api import create_app
from controller.api.reports import IngestFastPath
from controller.config import ControllerConfig
from controller.leader import Election, SqliteSingleton, election_for
from controller.monitor import Monitor
from controller.redact import LOG_REDACTOR, install_log_redaction, url_secrets
from controller.runtime import WorkflowRuntime
from controller.store.db import Database

log = logging.getLogger("boxkeeper.controller")

#: the format of serve's log lines (set up by cli/serve.py, and in every worker process)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _listen_reuseport(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class WorkerListener(socket.socket):
    """The address of ``serve --workers N``: bound here (port 0 is resolved) but not listening; each
    worker process that unpickles it gets its own ``SO_REUSEPORT`` listening socket on that address.

    The kernel then spreads new connections over the workers' sockets. With one shared listening
    socket, the worker that woke first accepted a whole burst of connections (libuv accepts all
    pending ones at once): measured, one worker at 100 % and the other idle for as long as those
    keep-alive connections lasted.
    """

    @classmethod
    def bind_address(cls, host: str, port: int) -> WorkerListener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = cls(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        return sock

    def __reduce__(self) -> tuple[Any, tuple[int, str, int]]:
        host, port = self.getsockname()[:2]
        return _listen_reuseport, (int(self.family), host, port)


#: How long an idle keep-alive connection stays open: longer than the usual push interval (15 s),
#: so that agents push over one connection instead of one TCP (and TLS) handshake per report.
KEEP_ALIVE_SECONDS = 75

#: Seconds a worker may take to answer the supervisor's health ping (uvicorn's default: 5) before it
#: is killed and started again: a worker starting on a loaded machine (load 18 on 2 cores, seen in
#: the test suite) took longer to import the app, and was killed over and over.
WORKER_HEALTHCHECK = 30

#: gen-0 threshold of the cyclic garbage collector while serving (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer cyclic-GC passes while serving: every report is validated into a few hundred
    short-lived objects (freed by reference counting, cycles are rare), and with the default
    thresholds the collector ran every few reports and the full passes walked the whole heap —
    about a third of the ingest CPU in the benchmark (bench/results/ingest.md). ``gc.freeze()``
    moves what exists after start-up (modules, app, SQLAlchemy metadata) out of the collector's
    view. Garbage cycles are still collected, only less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)


def _stopped(_sig: int, _frame: Any) -> None:
    log.info("boxkeeper controller stopped")


@dataclass(frozen=True)
class WorkerApp:
    """App factory of one worker process (``--workers N``). The parent's validated config travels
    pickled inside it, through the pipe ``multiprocessing`` starts the worker with: not through the
    environment, where the database password would be readable in ``/proc/<pid>/environ`` of every
    worker (and inherited by anything a worker starts)."""

    cfg: ControllerConfig
    log_level: str = "info"

    def __call__(self) -> Any:
        # a spawned worker starts with logging unconfigured: the same lines as the parent's
        logging.basicConfig(level=getattr(logging, self.log_level.upper(), logging.INFO), format=LOG_FORMAT)
        protect_logs(self.cfg)
        app = create_app(self.cfg, Database(self.cfg.database), monitor=None)
        tune_gc()
        return IngestFastPath(app)

#: exit status of a leader that lost its lock (systemd's Restart=on-failure starts it again)
LOST_LEADERSHIP_EXIT = 3
#: how long the graceful stop after a lost lock may take before the process exits anyway
LOST_LEADERSHIP_STOP_SECONDS = 30.0


def _stop_lost() -> None:
    """Stop this process as SIGTERM does (workers too), then ``serve`` exits 3; a watchdog exits
    hard if the stop hangs (the database is likely gone)."""
    def hard_exit() -> None:
        logging.shutdown()
        os._exit(LOST_LEADERSHIP_EXIT)

    timer = threading.Timer(LOST_LEADERSHIP_STOP_SECONDS, hard_exit)
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)


class Singletons:
    """The background work of one ``serve``, started when this process becomes the leader.

    Given to the app as its monitor: the app's start starts the election, its shutdown stops the
    work; reports still wake the monitor's detection (a no-op on a follower, whose monitor does not
    run: the leader's full pass every ``evaluate_interval`` picks them up)."""

    def __init__(self, cfg: ControllerConfig, db: Database, monitor: Monitor, workflows: WorkflowRuntime,
                 *, on_lost: Any = _stop_lost) -> None:
        self.monitor = monitor
        self.workflows = workflows
        self._lock = threading.Lock()
        self._running = False
        self._stop_process = on_lost
        self.lost = False
        self.election: Election = election_for(db, cfg.source, on_elected=self._elected, on_lost=self._lost)

    def _lost(self) -> None:
        """Leadership is gone: stop the background work now, then the process."""
        self.lost = True
        threading.Thread(target=self._halt_work, name="boxkeeper-step-down", daemon=True).start()
        self._stop_process()

    def _halt_work(self) -> None:
        with self._lock:
            if self._running:
                self.workflows.stop_service()
                self.monitor.stop()
            self._running = False

    def acquire(self) -> None:
        """SQLite: refuse now (ConfigError) when another ``serve`` runs on the file."""
        if isinstance(self.election, SqliteSingleton):
            self.election.acquire()

    def _elected(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
            self.monitor.start()
            self.workflows.start_service()

    def start(self) -> None:
        self.election.start()

    def stop(self) -> None:
        self.election.stop()
        self._halt_work()

    def notify_report(self, host: str) -> None:
        self.monitor.notify_report(host)

    def wake_dispatch(self) -> None:
        self.monitor.wake_dispatch()


def protect_logs(cfg: ControllerConfig) -> None:
    """Mask the config's secrets that are known before any channel is built (the database
    password; channels add theirs when their senders are made) in every log record."""
    LOG_REDACTOR.add(*url_secrets(cfg.database, whole=False))
    install_log_redaction()


def _tls_options(cfg: ControllerConfig) -> dict[str, Any]:
    if cfg.tls is None:
        return {}
    return {"ssl_certfile": cfg.tls.certificate, "ssl_keyfile": cfg.tls.key}


def serve(cfg: ControllerConfig, *, ready_file: str | None = None, monitor: bool = True,
          log_level: str = "info", access_log: bool = False, workers: int = 1) -> int:
    protect_logs(cfg)
    db = Database(cfg.database)
    db.upgrade()
    singletons = Singletons(cfg, db, Monitor(cfg, db), WorkflowRuntime(cfg, db)) if monitor else None
    if singletons is not None:
        singletons.acquire()
    inventory.sync_config(cfg, db)
    sock = bind(cfg.listen_host, cfg.listen_port) if workers <= 1 else \
        WorkerListener.bind_address(cfg.listen_host, cfg.listen_port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("boxkeeper controller on %s://%s:%s (API /api/v1, /metrics, /healthz, /docs); database %r",
             cfg.scheme, shown, port, db)
    if ready_file:
        tmp = Path(ready_file + ".tmp")
        tmp.write_text(f"{shown}:{port}\n", encoding="utf-8")
        os.replace(tmp, ready_file)
    if isinstance(sock, WorkerListener):
        return _serve_workers(cfg, db, sock, workers, singletons=singletons, log_level=log_level,
                              access_log=access_log)
    # The background side (outage detection, notifications, crash reconciliation of update runs,
    # update windows) runs with the app while this process leads; --no-monitor serves the API alone.
    app = create_app(cfg, db, monitor=singletons)
    if singletons is not None:
        app.state.workflows = singletons.workflows  # API runs and the service share one runtime
    config = uvicorn.Config(IngestFastPath(app), log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=10, server_header=False,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, **_tls_options(cfg))
    server = uvicorn.Server(config)
    tune_gc()
    # uvicorn handles SIGTERM/SIGINT (graceful stop), then re-raises the signal to the handlers that
    # were installed before it: make those no-ops so a requested stop ends with exit status 0.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _stopped)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        db.dispose()
    return LOST_LEADERSHIP_EXIT if singletons is not None and singletons.lost else 0


def _serve_workers(cfg: ControllerConfig, db: Database, sock: WorkerListener, workers: int, *,
                   singletons: Singletons | None, log_level: str, access_log: bool) -> int:
    """N uvicorn worker processes on one listening socket; the monitor runs once, in this process.

    Each worker is a stateless API replica (as several controllers behind a load balancer are): the
    database is the only shared state.
    """
    from uvicorn.supervisors import Multiprocess

    # The workers get the config in WorkerApp (pickled), and inherit this environment: a database
    # URL given as BOXKEEPER_DATABASE (it may hold the password) is not passed on to them.
    os.environ.pop("BOXKEEPER_DATABASE", None)
    config = uvicorn.Config(WorkerApp(cfg, log_level), factory=True, workers=workers,
                            log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=10, server_header=False,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS,
                            timeout_worker_healthcheck=WORKER_HEALTHCHECK, **_tls_options(cfg))
    if singletons is not None:
        singletons.start()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if singletons is not None:
            singletons.stop()
        sock.close()
        db.dispose()
    return LOST_LEADERSHIP_EXIT if singletons is not None and singletons.lost else 0
