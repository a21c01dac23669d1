"""The controller's background work: detection passes, notification delivery and the pruning of old
reports (:mod:`controller.retention`), in three threads.

``Monitor(cfg, db)``: ``start()`` / ``stop()`` (joins the threads), ``evaluate_once()`` (liveness +
probes + incident reconcile + notification sync), ``dispatch_once()`` (deliver due outbox rows),
``notify_report(host)`` (called by ingest after a report is committed: evaluate that host soon).
An exception in a pass is logged and the loop goes on.

Start-up grace: when ``start()`` finds that no report at all arrived for ``min_silence`` or more
(the controller, or every controller, was away), a silent host whose last report predates the start
is not declared down until its ``startup_grace`` has passed: the agents are still retrying. Hosts
that reported since are judged as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from controller.alerting.channels.base import Sender
from controller.alerting.channels.registry import build_senders
from controller.alerting.dispatcher import Dispatcher
from controller.alerting.outbox import NotifyPolicy, has_pending, sync_pending
from controller.alerting.reconcile import plan, reconcile, seen_open
from controller.alerting.routing import groups
from controller.config import ControllerConfig
from controller.detection.classify import HostView, evaluate
from controller.detection.config import DetectionConfig
from controller.detection.liveness import is_replaying, startup_grace
from controller.detection.probes import Prober, ProbeResult, ProbeTarget
from controller.detection.sweeps import SweepTimes
from controller.fleet import HostRecord, read_hosts
from controller.retention import Pruner
from controller.store.db import Database
from controller.store.models import HostState

log = logging.getLogger("boxkeeper.monitor")


def _address(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

#: after a report wakes the loop, wait this long so a burst of reports is evaluated in one pass
REPORT_BATCH_DELAY = 0.2
#: hosts whose incidents are reconciled in one write transaction
WRITE_CHUNK = 100
DISPATCH_INTERVAL = 1.0


class Monitor:
    def __init__(
        self,
        cfg: ControllerConfig,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        senders: dict[str, Sender] | None = None,
        prober: Prober | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.cfg = cfg
        self.db = db
        self.clock = clock
        self.detection: DetectionConfig = cfg.detection
        self.policy = NotifyPolicy(channels=tuple(cfg.notify), windows=tuple(cfg.maintenance))
        d = self.detection
        self.prober = prober or Prober(
            timeout=d.probe_timeout, interval=d.probe_interval, workers=d.probe_workers,
            verify_tls=d.probe_verify_tls, clock=clock,
        )
        self.dispatcher = dispatcher or Dispatcher(
            db, build_senders(self.policy.channels, source=cfg.source) if senders is None else senders,
            clock=clock, grouped=frozenset(c.name for c in self.policy.channels if groups(c)),
        )
        self._config_targets = {
            host.name: (host.portal_url, _address(host.ssh_address))
            for client in cfg.clients for host in client.hosts
        }
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_eval = threading.Event()
        self._wake_dispatch = threading.Event()
        self._threads: list[threading.Thread] = []
        # its own thread: a backlog of batches (each under 50 ms of writer time, with pauses between)
        # must not delay detection passes
        self.pruner = Pruner(db, cfg.retention, clock=clock)
        self.passes = 0
        self.pass_errors = 0
        self.sweeps = SweepTimes()  # full passes: boxkeeper_detection_sweep_seconds + a log line a minute
        #: set by start() after an outage: (this start, the newest report stored before it)
        self.outage: tuple[float, float | None] | None = None

    # -- one pass each ----------------------------------------------------------------------

    def evaluate_once(self, only: set[str] | None = None) -> int:
        """Liveness + probes + incidents reconcile + notification sync (all hosts, or ``only``);
        the number of hosts evaluated."""
        now = self.clock()
        with self.db.read_session() as session:
            records = read_hosts(session, self.detection, now, only=only, problems_only=True)
            current = seen_open(session, None if only is None else [r.host for r in records])
            pending = has_pending(session)
        targets = {r.host: self.targets(r) for r in records}
        wanted = {r.host: targets[r.host] for r in records if r.silent and targets[r.host]}
        probes = self.prober.probe(wanted, now) if wanted else {}
        evaluations = [evaluate(self.view(r, targets[r.host], probes.get(r.host)), self.detection)
                       for r in records]
        added = 0
        # only hosts whose incidents must change are written (as read above; reconcile reads them
        # again in its transaction); a healthy fleet costs no write transaction, a storm short ones
        # (the SQLite writer is shared with ingest: one transaction for thousands of new incidents
        # held it for a minute)
        changing = [e for e in evaluations if any(plan(e, current.get(e.host, {})))]
        for start in range(0, len(changing), WRITE_CHUNK):
            with self.db.session() as session:
                reconcile(session, changing[start:start + WRITE_CHUNK], now=now, policy=self.policy)
        if changing or pending:  # a pass after reports (``only``): what changed; a full one: all
            with self.db.session() as session:
                added = sync_pending(session, self.policy, now, changed_only=only is not None)
        self.passes += 1
        if added:
            self._wake_dispatch.set()
        return len(records)

    def targets(self, record: HostRecord) -> tuple[ProbeTarget, ...]:
        """What to probe when the host's agent is silent: its SSH address (TCP) and portal URL
        (HTTP), from its row, else from the config; none when probes are off for the host."""
        if not self.detection.for_host(record.host).probes:
            return ()
        portal, ssh = self._config_targets.get(record.host, (None, None))
        portal, ssh = record.portal_url or portal, record.ssh_address or ssh
        found = [ProbeTarget("ssh", ssh)] if ssh else []
        return (*found, ProbeTarget("portal", portal)) if portal else tuple(found)

    def view(self, record: HostRecord, targets: tuple[ProbeTarget, ...],
             probes: tuple[ProbeResult, ...] | None) -> HostView:
        d = self.detection
        return HostView(
            host=record.host, client=record.client, reported=record.reported, silent=record.silent,
            silent_for=record.silent_for, probes=probes if targets else (), checks=record.checks,
            probes_disabled=not d.for_host(record.host).probes,
            replaying=is_replaying(record.last_report_at, record.last_sent_at, d,
                                   record.push_interval_seconds, record.host),
            starting=self.in_grace(record),
        )

    def in_grace(self, record: HostRecord) -> bool:
        """The host is silent since before an outage of the controller and its start-up grace runs."""
        if self.outage is None or not record.silent:
            return False
        started, _ = self.outage
        if record.last_report_at is not None and record.last_report_at >= started:
            return False
        grace = startup_grace(self.detection, record.push_interval_seconds, record.host)
        return self.clock() < started + grace

    def note_start(self) -> None:
        """Look whether the controller was away (no report stored for ``min_silence``): then
        silent hosts get their start-up grace."""
        now = self.clock()
        with self.db.read_session() as session:
            newest = session.scalar(select(func.max(HostState.last_report_at)))
        if newest is None or now - newest >= self.detection.min_silence:
            self.outage = (now, newest)
            if newest is not None:
                log.warning("no report was stored for %.0f s before this start: hosts get a start-up "
                            "grace before they count as down", now - newest)

    def dispatch_once(self) -> int:
        """Deliver the due outbox rows; the number delivered."""
        return self.dispatcher.dispatch_once()

    def notify_report(self, host: str) -> None:
        """A report from ``host`` was stored: evaluate it soon (a hard CRITICAL pages without waiting)."""
        with self._lock:
            self._dirty.add(host)
        self._wake_eval.set()

    def wake_dispatch(self) -> None:
        """Something was enqueued outside the monitor (API ack/resolve): deliver it now."""
        self._wake_dispatch.set()
        self._wake_eval.set()

    # -- threads ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        try:
            self.note_start()
        except Exception:
            log.exception("could not read the newest report time; no start-up grace")
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._evaluate_loop, name="boxkeeper-evaluate", daemon=True),
            threading.Thread(target=self._dispatch_loop, name="boxkeeper-dispatch", daemon=True),
            threading.Thread(target=self.pruner.run, args=(self._stop,), name="boxkeeper-retention",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake_eval.set()
        self._wake_dispatch.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self.prober.close()
        self.dispatcher.close()

    def _evaluate_loop(self) -> None:
        interval = self.detection.evaluate_interval
        next_full = time.monotonic()
        while not self._stop.is_set():
            woke = self._wake_eval.wait(max(0.0, next_full - time.monotonic()))
            if self._stop.is_set():
                return
            if woke:
                self._stop.wait(REPORT_BATCH_DELAY)
            self._wake_eval.clear()
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            full = time.monotonic() >= next_full
            try:
                started = time.perf_counter()
                hosts = self.evaluate_once(None if full else dirty)
                if full:
                    self.sweeps.record(time.perf_counter() - started, hosts)
            except Exception:
                self.pass_errors += 1
                log.exception("detection pass failed; retrying in %.1f s", interval)
            if full:
                next_full = time.monotonic() + interval

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.dispatch_once()
            except Exception:
                delivered = 0
                self.pass_errors += 1
                log.exception("notification pass failed; retrying")
            if delivered:
                continue
            self._wake_dispatch.wait(DISPATCH_INTERVAL)
            self._wake_dispatch.clear()
