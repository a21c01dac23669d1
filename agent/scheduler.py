"""Runs the checks on time on a bounded pool of reused worker threads, each run with its own timeout,
and keeps their states.

Workers
    Runs go to a :class:`~agent.workers.WorkerPool` of at most ``max_workers`` threads that are
    started when first needed and then reused (no thread start per run). The pool runs the checks
    due together one after the other on one worker (cheaper in CPU than running them at once), and
    brings in another worker whenever the oldest waiting run has waited ``SPILL_SECONDS``, so a slow
    or hung check holds up the others by that much at most. At most ``max_workers`` runs are active
    at once; the others wait in the pool's queue. A run still going ``timeout`` (+ a short grace,
    so a check that enforces its own timeout reports first) after it started is reported UNKNOWN
    "timed out after 10s" and *abandoned*: its worker is written off (it leaves the pool when the
    stuck call returns; Python cannot kill a thread) and replaced by a fresh one when needed, and
    while it is still alive the same check is not started again — each due time reports UNKNOWN
    "still hung since ..." instead. So at most ``max_workers`` pool workers plus one stuck worker
    per hung check exist.

Stopping
    :meth:`CheckScheduler.stop` stops scheduling, closes every check that has a ``close()`` (a
    command check then kills the process groups of its plugins still running, hung ones included,
    and does not start new ones) and closes the pool.

Timing
    ``clock`` (monotonic) drives due times and timeouts, ``wall`` stamps ``last_change`` and
    "hung since". The next run is due ``interval`` after the run was launched (so checks due
    together stay together), or ``retry_interval`` while the check is soft-failing (see
    :mod:`agent.state`); a run's timeout counts from when a worker took it.

Callback
    ``on_hard_change(report)`` is called from the scheduler thread (or from the caller of
    :meth:`run_once`), outside the lock, when a check's hard state changes — including its first
    hard state — and when flapping starts or stops, so the service can push a report at once.
    An exception in the callback is logged and does not stop the scheduler.

:meth:`CheckScheduler.tick` is one scheduling step (time out overdue runs, make the callbacks of
finished ones, start due checks); :meth:`start` calls it from a background thread; tests call it
with a fake clock. A finished run's result is applied to its check's state by the worker, under
the lock, as it finishes; the worker wakes the scheduler thread only when there is something to
do at once (a hard change to report, a sooner retry), not after every run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Optional

from agent.checks.base import Check, CheckResult, CheckSpec, seconds_text, timeout_text
from agent.report import CheckReport, Sample, Status
from agent.state import CheckState, StatePolicy, advance, next_delay, pending, policy_for, to_report
from agent.workers import Job, WorkerPool

log = logging.getLogger(__name__)

#: Extra time the scheduler gives a check past its timeout before abandoning it.
GRACE_SECONDS = 1.0
#: Longest the background thread sleeps between steps. It is woken for everything it must do
#: (a due check, a run's deadline, a finished run with news, stop), so this is only a safety net:
#: each needless wake-up of an idle thread cost ~0.1 ms of CPU on the benchmark VM, and with the
#: example's 15 s interval a 1 s cap meant 14 of them per cycle.
MAX_SLEEP_SECONDS = 60.0
#: How soon the background thread tries again after a step failed (a bug: logged).
ERROR_RETRY_SECONDS = 1.0
#: How long a due check may wait behind the checks queued before it until another worker takes it
#: (see agent.workers, "Lanes").
SPILL_SECONDS = 0.05


@dataclass(eq=False)
class _Run:
    queued: float  # clock() when launched
    started: Optional[float] = None  # clock() when its worker took it
    started_wall: float = 0.0
    job: Optional[Job] = None
    done: bool = False
    duration: float = 0.0
    abandoned: bool = False


@dataclass(eq=False)
class _Entry:
    cfg: CheckSpec
    check: Check
    policy: StatePolicy
    state: CheckState
    due: float = 0.0
    run: Optional[_Run] = None  # the latest run, active or abandoned-and-alive


class CheckScheduler:
    def __init__(
        self,
        checks: Sequence[tuple[CheckSpec, Check]],
        *,
        on_hard_change: Optional[Callable[[CheckReport], None]] = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_workers: int = 8,
        grace: float = GRACE_SECONDS,
        spill: float = SPILL_SECONDS,
        flap_low: float = 25.0,
        flap_high: float = 50.0,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._on_hard_change = on_hard_change
        self._grace = grace
        now = clock()
        self._entries = [
            _Entry(cfg, check, policy_for(cfg, flap_low, flap_high), pending(cfg.name, cfg.type), due=now)
            for cfg, check in checks
        ]
        self._cond = threading.Condition()
        self._reports: Optional[tuple[CheckReport, ...]] = None  # snapshot() of the current states
        self._samples: Optional[tuple[Sample, ...]] = None  # samples() of the current states
        self._pool = WorkerPool(max_workers, name="check-worker", spill_after=spill)
        self._events: list[CheckReport] = []  # hard changes applied by workers, for the callback
        self._waiters = 0  # run_once / wait_idle callers waiting for runs to finish
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread that runs each check at its interval."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="check-scheduler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling and close the checks: a command check's ``close()`` kills the process
        groups of its plugins still running (hung ones too) and it does not run again; other runs
        in progress are left to finish on their own (daemon worker threads)."""
        with self._cond:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for entry in self._entries:
            close = getattr(entry.check, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("closing check %s failed", entry.cfg.name)
        self._pool.close()

    @property
    def worker_threads_started(self) -> int:
        """Worker threads started so far (a pool: far fewer than runs)."""
        return self._pool.threads_started

    def snapshot(self) -> tuple[CheckReport, ...]:
        """The latest state of every check, in config order (thread-safe). Built once per change of
        state: a scrape and a report between two runs share it."""
        with self._cond:
            return self._snapshot()

    def _snapshot(self) -> tuple[CheckReport, ...]:
        if self._reports is None:
            self._reports = tuple(to_report(e.state, e.policy) for e in self._entries)
        return self._reports

    def samples(self) -> tuple[Sample, ...]:
        """The series of every check's latest result, in config order (thread-safe; built once
        per change of state, like :meth:`snapshot`)."""
        with self._cond:
            if self._samples is None:
                self._samples = tuple(s for e in self._entries for s in e.state.samples)
            return self._samples

    def run_once(self) -> tuple[CheckReport, ...]:
        """Run every check once now (``max_workers`` at a time, each within its timeout); return the
        reports.

        A check whose earlier run is still in progress is not started again: its run is awaited
        (or, if it is already past its timeout, reported as still hung).
        """
        todo = list(self._entries)
        events: list[CheckReport] = []
        with self._cond:
            events += self._take_events()  # results of the background loop, not lost
            events += self._collect(self._clock())
            now = self._clock()
            for entry in todo:
                if entry.run is not None and entry.run.abandoned and not entry.run.done:
                    events += self._apply(entry, self._hung_result(entry), 0.0)
                elif entry.run is None or entry.run.done:
                    self._launch(entry, now)
                # else: a run in progress, awaited below
            while True:
                now = self._clock()
                events += self._take_events()
                events += self._collect(now)
                busy = self._busy()
                if not busy:
                    events += self._take_events()
                    break
                self._wait(self._sleep_for(now, busy, idle=False))
            reports = self._snapshot()
        self._notify(events)
        return reports

    def wait_idle(self, timeout: float, names: Optional[Collection[str]] = None) -> bool:
        """Wait (real time) until no run (of the ``names`` checks, default all) is in progress, hung
        runs aside; False on timeout. Finished runs' states are applied when they finish; their
        ``on_hard_change`` callbacks are made by the next :meth:`tick`.
        """
        end = time.monotonic() + timeout
        with self._cond:
            while any(names is None or e.cfg.name in names for e in self._busy()):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._wait(min(left, MAX_SLEEP_SECONDS))
            return True

    def tick(self) -> float:
        """One scheduling step; returns seconds until something is due (for the loop to sleep)."""
        with self._cond:
            now = self._clock()
            events = self._take_events()
            events += self._collect(now)
            for entry in self._entries:
                if entry.due > now:
                    continue
                run = entry.run
                if run is not None and not run.done:
                    if run.abandoned:  # still hung: report, do not start another
                        events += self._apply(entry, self._hung_result(entry), 0.0)
                        entry.due = now + next_delay(entry.state, entry.cfg)
                    continue  # active run: collected when it ends or times out
                self._launch(entry, now)
            delay = self._sleep_for(now, self._busy())
        self._notify(events)
        return delay

    # -- internals (called with the lock held) ---------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                delay = self.tick()
            except Exception:  # the scheduler must outlive any bug in a callback
                log.exception("check scheduler step failed")
                delay = ERROR_RETRY_SECONDS
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(min(max(delay, 0.01), MAX_SLEEP_SECONDS))

    def _wait(self, timeout: float) -> None:
        """Wait on the condition as a caller that finishing runs must wake."""
        self._waiters += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiters -= 1

    def _take_events(self) -> list[CheckReport]:
        events, self._events = self._events, []
        return events

    def _busy(self) -> list[_Entry]:
        return [e for e in self._entries if e.run is not None and not e.run.done and not e.run.abandoned]

    def _sleep_for(self, now: float, busy: list[_Entry], *, idle: bool = True) -> float:
        """Until the next due check (``idle``) or the next run deadline; finished runs notify."""
        # (a run still queued in the pool: as if it started now, looked at again by then)
        times = [(e.run.started if e.run.started is not None else now) + e.cfg.timeout + self._grace
                 for e in busy if e.run is not None]
        if idle:
            # (a busy check's due time too: its run may end before it and leave it due then)
            times += [e.due for e in self._entries if e.due > now]
        if not times:
            return MAX_SLEEP_SECONDS
        return min(max(min(times) - now, 0.0), MAX_SLEEP_SECONDS)

    def _launch(self, entry: _Entry, now: float) -> None:
        run = _Run(queued=now)
        entry.run = run
        provisional = entry.due = now + entry.cfg.interval  # set properly when the result is in
        check, timeout = entry.check, float(entry.cfg.timeout)  # a plain float in results (perfdata max)

        outcome: list[tuple[CheckResult, float]] = []

        def work() -> None:
            run.started_wall = self._wall()
            run.started = started = self._clock()  # its timeout counts from here
            try:
                result = check.run(timeout)
            except Exception as exc:
                log.exception("check %s crashed", entry.cfg.name)
                result = CheckResult(Status.UNKNOWN, f"check crashed: {type(exc).__name__}: {exc}")
            outcome.append((result, self._clock() - started))

        def publish() -> None:  # runs on the same worker right after work() (WorkerPool.submit)
            result, duration = outcome[0]
            with self._cond:
                run.duration, run.done = duration, True
                if run.abandoned:
                    log.warning("check %s finished %.1fs after it was reported hung; result dropped",
                                entry.cfg.name, duration - timeout)
                    return
                events = self._apply(entry, result, duration)
                entry.due = run.queued + next_delay(entry.state, entry.cfg)
                self._events += events
                # Wake the scheduler thread only when it has something to do now: deliver a hard
                # change, or reschedule a sooner retry.
                if events or self._waiters or entry.due < provisional:
                    self._cond.notify_all()

        run.job = self._pool.submit(work, entry.cfg.name, after=publish)

    def _collect(self, now: float) -> list[CheckReport]:
        """Time out overdue runs (finished ones were applied by their worker); returns reports for
        the callback."""
        events: list[CheckReport] = []
        for entry in self._entries:
            run = entry.run
            if run is None or run.abandoned or run.done or run.started is None:
                continue  # (a run not started yet waits in the pool's queue)
            if now >= run.started + entry.cfg.timeout + self._grace:
                run.abandoned = True
                if run.job is not None:
                    self._pool.retire(run.job)  # a fresh worker takes its place
                log.warning("check %s timed out after %s; its worker is written off",
                            entry.cfg.name, seconds_text(entry.cfg.timeout))
                result = CheckResult(Status.UNKNOWN, timeout_text(entry.check, entry.cfg.timeout))
                events += self._apply(entry, result, now - run.started)
                entry.due = run.queued + next_delay(entry.state, entry.cfg)
        return events

    def _hung_result(self, entry: _Entry) -> CheckResult:
        assert entry.run is not None
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.run.started_wall))
        return CheckResult(
            Status.UNKNOWN,
            f"still hung since {since} ({timeout_text(entry.check, entry.cfg.timeout)})",
        )

    def _apply(self, entry: _Entry, result: CheckResult, duration: float) -> list[CheckReport]:
        t = advance(entry.state, result, duration=duration, now=self._wall(), policy=entry.policy)
        entry.state = t.state
        self._reports = None
        self._samples = None
        if t.hard_changed or t.flapping_changed:
            return [to_report(t.state, entry.policy)]
        return []

    def _notify(self, events: list[CheckReport]) -> None:
        if self._on_hard_change is None:
            return
        for report in events:
            try:
                self._on_hard_change(report)
            except Exception:
                log.exception("on_hard_change callback failed for check %s", report.name)
