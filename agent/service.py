"""``boxkeeper-agent run``: wires checks, collectors, /metrics, spool and push into one process.

Threads: the check scheduler (agent/scheduler.py) with its workers; prometheus-client's HTTP
server for /metrics; one report loop that builds a report every ``controller.push_interval``
(and at once, coalesced over 0.2 s, when a check changes hard state), writes it to the spool and
drains the spool oldest-first (agent/push.py). The main thread waits for SIGTERM or SIGINT, then
stops everything and returns 0. Without a ``controller`` section there is no spool and no push:
the agent runs its checks and serves /metrics.

Exit codes: 0 clean stop, 1 cannot run (spool unusable, listen address taken), 2 bad token file.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Optional

from agent import __version__
from agent.collectors import HostSampler
from agent.collectors.facts import FactsCollector
from agent.collectors.mounts import MountTable, open_mount_table
from agent.collectors.registry import HostSources, build_collectors
from agent.config import AgentConfig
from agent.errors import AgentError, SpoolError, TokenFileError
from agent.metrics import AgentCollector, build_registry, serve, shutdown
from agent.proctable import ProcessTable
from agent.proxy import choose as choose_proxy
from agent.push import HttpTransport, Pusher, Transport, public_url
from agent.report import CheckReport, Sample
from agent.reporter import SEQ_FILE, Reporter, SeqCounter, unix_millis
from agent.spool import Spool
from agent.token import read_token

log = logging.getLogger("agent")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIRST_REPORT_DELAY = 2.0  # seconds after start: tells the controller quickly that the agent is up
GC_THRESHOLD = 10_000  # net allocations between two runs of the cyclic garbage collector
COALESCE = 0.2  # seconds to gather several hard changes into one report
IDLE_WAKE_SECONDS = 60.0  # the main thread only waits for SIGTERM/SIGINT: no need to poll often


def configure_logging(level: int = logging.INFO) -> None:
    """Timestamped lines on stderr (the journal keeps them), unless logging is set up already."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)


@dataclass
class _Push:
    spool: Spool
    reporter: Reporter
    pusher: Pusher
    interval: float


class AgentService:
    """The running agent. ``start()`` raises AgentError/OSError before anything is left running."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        ps: Any = None,
        transport: Optional[Transport] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own_ps = ps is None  # the real psutil: the real /proc/self/mounts goes with it
        if ps is None:
            import psutil

            ps = psutil
        self.cfg = cfg
        self._ps = ps
        self._transport = transport
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._server_thread: Optional[threading.Thread] = None
        self._scheduler: Any = None
        self._scheduler_started = False
        self._push: Optional[_Push] = None
        self._mounts: Optional[MountTable] = None
        self.metrics_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.cfg
        token = read_token(cfg.controller.token_file) if cfg.controller else None  # TokenFileError

        from agent.checks.base import Resources
        from agent.checks.registry import build_check, sample_help
        from agent.scheduler import CheckScheduler

        facts = FactsCollector(self._ps)
        self._mounts = open_mount_table() if self._own_ps else None  # None: psutil's (no /proc)
        sampler = HostSampler(build_collectors(HostSources(self._ps, facts=facts, partitions=self._mounts)))

        if cfg.controller is not None and token is not None:
            spool = Spool(cfg.spool.dir, cfg.spool.max_bytes)  # SpoolError
            seq = SeqCounter(cfg.spool.dir / SEQ_FILE, floor=spool.max_seq() or 0, initial=unix_millis)
            proxy = choose_proxy(cfg.controller.url, cfg.controller.proxy, os.environ)  # ConfigError
            transport = self._transport or HttpTransport(
                cfg.controller.url, token, timeout=cfg.controller.timeout, ca_file=cfg.controller.ca_file,
                proxy=proxy,
            )
            if proxy is not None:
                log.info("pushing to %s through the proxy %s", public_url(cfg.controller.url), proxy.shown)
            reporter = Reporter(
                host=cfg.host, agent_version=__version__, push_interval=cfg.controller.push_interval, seq=seq,
                checks=self._snapshot, facts=facts.facts,
                samples=functools.partial(self._report_samples, sampler, cfg.controller.push_interval),
            )
            via = f" (via proxy {proxy.shown})" if proxy is not None else ""
            pusher = Pusher(spool, transport, clock=self._clock, url=cfg.controller.url + via)
            self._push = _Push(spool, reporter, pusher, cfg.controller.push_interval)

        resources = Resources(  # one /proc scan shared by all process checks
            processes=ProcessTable(), host=cfg.host, state_dir=cfg.state_dir, save_state=True,
        )
        self._scheduler = CheckScheduler(
            [(spec, build_check(spec, resources)) for spec in cfg.checks],
            on_hard_change=self._on_hard_change,
        )
        collector = AgentCollector(
            version=__version__,
            host_samples=sampler.samples,
            checks=self._snapshot,
            check_samples=self._check_samples,
            sample_help=sample_help(),
            spool_stats=self._push.spool.stats if self._push else None,
            push_stats=self._push.pusher.stats if self._push else None,
        )
        self._server, self._server_thread = serve(build_registry(collector), cfg.listen_host, cfg.listen_port)
        host = cfg.listen_host if ":" not in cfg.listen_host else f"[{cfg.listen_host}]"
        self.metrics_url = f"http://{host}:{self._server.server_port}/metrics"

        self._scheduler.start()
        self._scheduler_started = True
        if self._push is not None:
            thread = threading.Thread(target=self._report_loop, name="report-loop", daemon=True)
            thread.start()
            self._threads.append(thread)
        pushing = "no controller configured (no push)"
        if cfg.controller is not None:
            url, every = public_url(cfg.controller.url), cfg.controller.push_interval
            pushing = f"pushing to {url} every {every:g}s, spool {cfg.spool.dir}"
        log.info("boxkeeper-agent %s on %s: %d check(s), metrics at %s, %s",
                 __version__, cfg.host, len(cfg.checks), self.metrics_url, pushing)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._scheduler_started:
            self._scheduler.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        if self._push is not None:
            self._push.pusher.close()  # the kept-alive connection to the controller
        if self._server is not None and self._server_thread is not None:
            shutdown(self._server, self._server_thread)
        if self._mounts is not None:
            self._mounts.close()
        log.info("boxkeeper-agent stopped")

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._stop.wait(timeout)

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # -- reports -----------------------------------------------------------------------------

    def _snapshot(self) -> tuple[CheckReport, ...]:
        return tuple(self._scheduler.snapshot()) if self._scheduler is not None else ()

    def _check_samples(self) -> tuple[Sample, ...]:
        return self._scheduler.samples() if self._scheduler is not None else ()

    def _report_samples(self, sampler: HostSampler, max_age: float) -> tuple[Sample, ...]:
        """A report's samples: the host's (see HostSampler.for_report), the checks' series, and the
        spool's depth and drops (so the controller's /metrics shows them for boxes behind NAT)."""
        return (*sampler.for_report(max_age), *self._check_samples(), *self._spool_samples())

    def _spool_samples(self) -> tuple[Sample, ...]:
        if self._push is None:
            return ()
        stats = self._push.spool.stats()
        return (Sample("boxkeeper_spool_reports", float(stats.reports)),
                Sample("boxkeeper_spool_bytes", float(stats.bytes)),
                Sample("boxkeeper_spool_dropped_reports_total", float(stats.dropped_total), "counter"))

    def _on_hard_change(self, check: CheckReport) -> None:
        self._wake.set()

    def push_now(self) -> None:
        """Build and push a report now (what a hard state change does)."""
        self._wake.set()

    def _report_loop(self) -> None:
        push = self._push
        assert push is not None
        next_report = self._clock() + min(FIRST_REPORT_DELAY, push.interval)
        while not self._stop.is_set():
            timeout = max(0.0, next_report - self._clock())
            if push.spool.stats().reports:
                timeout = min(timeout, push.pusher.retry_in())
            woken = self._wake.wait(timeout)
            if self._stop.is_set():
                break
            if woken:
                self._stop.wait(COALESCE)
                self._wake.clear()
            now = self._clock()
            if woken or now >= next_report:
                next_report = now + push.interval
                self._spool_report(push)
            try:
                push.pusher.drain(should_stop=self._stop.is_set)
            except AgentError as exc:
                log.error("push: %s", exc)
                self._stop.wait(1.0)
            except Exception:
                log.exception("push loop: unexpected error (will go on)")
                self._stop.wait(1.0)

    def _spool_report(self, push: _Push) -> None:
        try:
            push.reporter.spool_next(push.spool)
        except SpoolError as exc:
            log.error("report not stored: %s", exc)
        except Exception:
            log.exception("building a report failed (will try again at the next interval)")


def tune_gc() -> None:
    """Once started, the agent allocates the same few objects each cycle, and nearly all are freed
    by reference counting: with Python's default threshold (700) the cyclic collector still ran
    about once per 15 s cycle and a second generation pass every eighth, ~0.36 ms of CPU per cycle
    on the bench VM. The startup objects (modules, config) are moved out of the collector's way
    (``gc.freeze``) and a collection runs after 10,000 net allocations instead of 700."""
    gc.collect()  # not to freeze start-up garbage with the rest
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def run_agent(cfg: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    configure_logging()
    service = AgentService(cfg)
    try:
        service.start()
    except TokenFileError as exc:
        log.error("%s", exc)
        service.stop()
        return 2
    except SpoolError as exc:
        log.error("%s", exc)
        service.stop()
        return 1
    except AgentError as exc:
        log.error("%s", exc)
        service.stop()
        return 2
    except OSError as exc:
        log.error("cannot listen on %s for /metrics: %s", cfg.listen, exc.strerror or exc)
        service.stop()
        return 1

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        service.request_stop()

    tune_gc()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    while not service.wait(IDLE_WAKE_SECONDS):  # a signal's handler runs during the wait
        pass
    service.stop()
    return 0
