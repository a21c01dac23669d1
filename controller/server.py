"""``boxkeeper serve``: the API on uvicorn, the monitor (detection + notifications) alongside.

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
        return _serve_workers(cfg, db, sock, workers, monitor=monitor, log_level=log_level,
                              access_log=access_log)
    # The background side (outage detection, notifications, crash reconciliation of update runs,
    # update windows) runs with the app; --no-monitor serves the API alone.
    app = create_app(cfg, db, monitor=Monitor(cfg, db) if monitor else None,
                     workflows=WorkflowRuntime(cfg, db) if monitor else None)
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
    return 0


def _serve_workers(cfg: ControllerConfig, db: Database, sock: WorkerListener, workers: int, *, monitor: bool,
                   log_level: str, access_log: bool) -> int:
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
    mon = Monitor(cfg, db) if monitor else None
    workflows = WorkflowRuntime(cfg, db) if monitor else None
    if mon is not None:
        mon.start()
    if workflows is not None:
        workflows.start_service()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if workflows is not None:
            workflows.stop_service()
        if mon is not None:
            mon.stop()
        sock.close()
        db.dispose()
    return 0
