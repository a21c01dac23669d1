"""A small bounded pool of reusable worker threads whose stuck workers can be written off.

The check scheduler used to start a thread per check run (16 checks every second: 16 thread
starts and exits per second, the largest single cost of the scheduler). :class:`WorkerPool` keeps
up to ``max_workers`` threads and hands them jobs from a queue; a thread is started only when a
job is queued and no idle worker is there to take it, and idle workers wait for the next job.

Lanes (``spill_after``)
    Most checks take well under a millisecond of CPU, and running 16 of them at once on 8 threads
    cost 25-45 % more CPU than running them one after the other (the threads hand the GIL to
    each other and wake each other up; bench/check_micro.py). With ``spill_after`` > 0 the pool
    runs queued jobs one after the other on as few workers as it can: a worker that finishes a
    job takes the next one straight away, and another worker joins only when the oldest queued
    job has waited ``spill_after`` seconds (a slow or hung job then holds up the rest by that
    long, no more). An idle worker watches the queue for that while jobs wait. ``spill_after=0``
    (the default) hands each job to a free worker at once.

Stuck workers
    Python cannot kill a thread. When a job runs past its deadline the owner calls
    :meth:`WorkerPool.retire` on it: the worker running it (or the one that will pick it up, if it
    is still queued) stops counting against ``max_workers`` and exits once the job returns, and
    a fresh worker is started if jobs wait and none is idle. So a hung job never eats the pool,
    and at most ``max_workers`` counted workers plus one retired worker per still-stuck job exist
    (the owner decides how many stuck jobs it allows; the scheduler allows one per check).

:meth:`WorkerPool.close` lets idle workers exit; busy ones exit after their current job. Worker
threads are daemon threads: a stuck one never keeps the process from exiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Optional

log = logging.getLogger(__name__)


class Job:
    """One submitted callable. ``retired`` once its owner gave up waiting for it; ``queued`` is the
    pool clock's time it was submitted (for the spill-over)."""

    __slots__ = ("after", "counted", "done", "fn", "name", "queued", "retired")

    def __init__(self, fn: Callable[[], None], name: str, after: Optional[Callable[[], None]],
                 queued: float) -> None:
        self.fn = fn
        self.after = after
        self.name = name
        self.queued = queued
        self.retired = False
        self.done = False
        self.counted = False  # its worker counts in WorkerPool._running


class WorkerPool:
    def __init__(self, max_workers: int, *, name: str = "worker", spill_after: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be 1 or more")
        if spill_after < 0:
            raise ValueError("spill_after must be 0 or more")
        self._max = max_workers
        self._name = name
        self._spill = spill_after
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Job] = deque()
        self._idle = 0  # counted workers without a job (waiting, or started and not yet waiting)
        self._wakes = 0  # idle workers notified to take a job at once, not yet taken
        self._watchers = 0  # idle workers waiting for the queue head's spill time
        self._watch_calls = 0  # idle workers notified to become watchers, not yet watching
        self._running = 0  # counted workers running a job (a retired job's worker is not counted)
        self._workers = 0  # live workers that count against max_workers (retired ones do not)
        self._started = 0  # threads started over the pool's life (for tests and the bench)
        self._closed = False

    @property
    def threads_started(self) -> int:
        with self._cond:
            return self._started

    @property
    def workers(self) -> int:
        """Live workers counted against ``max_workers`` (retired, stuck ones excluded)."""
        with self._cond:
            return self._workers

    def submit(self, fn: Callable[[], None], name: str = "job",
               after: Optional[Callable[[], None]] = None) -> Job:
        """Queue ``fn``; it runs as soon as a worker is free (see "Lanes" for ``spill_after``).

        ``after`` runs on the same worker once ``fn`` returned: publish a job's result there. A
        retired job's ``after`` runs too (late), on the worker that then leaves the pool.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            job = Job(fn, name, after, self._clock())
            self._queue.append(job)
            self._dispatch()
        return job

    def retire(self, job: Job) -> None:
        """Write off the worker running ``job`` (or the one that will take it, if it is still
        queued): it leaves the pool when ``job`` returns, and its place is free for a new worker
        at once (once taken, for a queued job)."""
        with self._cond:
            if job.retired or job.done:
                return
            job.retired = True
            if job.counted:  # running: its worker leaves the pool when it returns
                job.counted = False
                self._running -= 1
                self._workers -= 1
                self._dispatch()
            # else still queued: the worker that takes it is written off then (_take)

    def close(self) -> None:
        """No more jobs: idle workers exit now, busy ones after their current job."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- internals (lock held) ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        """See that the queued jobs will be taken: without lanes, by free workers at once; with
        lanes, by one worker at once when none is running, else by a watcher at the spill time."""
        waiting = len(self._queue) - self._wakes
        if waiting <= 0:
            return
        if self._spill == 0:
            for _ in range(waiting):
                if not self._wake_one():
                    return
        elif self._running + self._wakes == 0:
            self._wake_one()
        elif self._watchers + self._watch_calls == 0 and (self._idle > self._wakes or self._start_worker()):
            self._watch_calls += 1  # an idle worker (or the new one) becomes the watcher
            self._cond.notify()

    def _wake_one(self) -> bool:
        """Have an idle worker (or a new one, within ``max_workers``) take a queued job at once."""
        if self._idle <= self._wakes and not self._start_worker():
            return False
        self._wakes += 1
        self._cond.notify()
        return True

    def _start_worker(self) -> bool:
        if self._workers >= self._max:
            return False
        self._workers += 1
        self._idle += 1  # idle from its creation: else a round may start one too many
        self._started += 1
        threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True).start()
        return True

    def _take(self) -> Job:
        job = self._queue.popleft()
        if job.retired:  # written off before it started: so is the worker that runs it now
            self._workers -= 1
            self._dispatch()
        else:
            job.counted = True
            self._running += 1
        return job

    def _next(self) -> Optional[Job]:
        """As an idle worker, wait for a job to take; None when the pool is closed."""
        while True:
            if self._queue:
                if self._watch_calls > 0:
                    self._watch_calls -= 1  # (this worker answers the call: it watches or takes)
                if self._wakes == 0 and self._running > 0:
                    wait = self._queue[0].queued + self._spill - self._clock()
                    if wait > 0:  # watch: the oldest job has not waited long enough yet
                        self._watchers += 1
                        self._cond.wait(wait)
                        self._watchers -= 1
                        continue
                job = self._take_idle()  # woken for it, nobody running, or spilling over
                self._dispatch()  # the rest of the queue may need a watcher again
                return job
            self._wakes = 0  # woken for jobs that others took
            self._watch_calls = 0
            if self._closed:
                self._idle -= 1
                self._workers -= 1
                return None
            self._cond.wait()

    def _take_idle(self) -> Job:
        if self._wakes > 0:
            self._wakes -= 1
        self._idle -= 1
        return self._take()

    def _work(self) -> None:  # counted idle by whoever started it
        with self._cond:
            job = self._next()
        while job is not None:
            try:
                job.fn()
            except BaseException:  # the job's own handler failed; the worker lives on
                log.exception("worker job %s failed", job.name)
            with self._cond:
                job.done = True
            if job.after is not None:
                try:
                    job.after()
                except BaseException:
                    log.exception("worker job %s failed", job.name)
            with self._cond:
                if not job.counted:  # retired while it ran (or before): this worker leaves
                    return
                job.counted = False
                self._running -= 1
                if self._queue:
                    job = self._take()  # the lane goes on: the next job, no hand-off
                else:
                    self._idle += 1
                    job = self._next()
