"""A small bounded pool of reusable worker threads whose stuck workers can be written off.

The check scheduler used to start a thread per check run (16 checks every second: 16 thread
starts and exits per second, the largest single cost of the scheduler). :class:`WorkerPool` keeps
up to ``max_workers`` threads and hands them jobs from a queue; a thread is started only when a
job is queued and no idle worker is there to take it, and idle workers wait for the next job.

Stuck workers
    Python cannot kill a thread. When a job runs past its deadline the owner calls
    :meth:`WorkerPool.retire` on it: the worker running it (or the one that will pick it up, if it
    is still queued) stops counting against ``max_workers`` and exits once the job returns, and
    the next :meth:`submit` starts a fresh worker if none is idle. So a hung job never eats the
    pool, and at most ``max_workers`` counted workers plus one retired worker per still-stuck job
    exist (the owner decides how many stuck jobs it allows; the scheduler allows one per check).

:meth:`WorkerPool.close` lets idle workers exit; busy ones exit after their current job. Worker
threads are daemon threads: a stuck one never keeps the process from exiting.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class Job:
    """One submitted callable. ``retired`` once its owner gave up waiting for it."""

    __slots__ = ("after", "done", "fn", "name", "retired")

    def __init__(self, fn: Callable[[], None], name: str, after: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self.after = after
        self.name = name
        self.retired = False
        self.done = False


class WorkerPool:
    def __init__(self, max_workers: int, *, name: str = "worker") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be 1 or more")
        self._max = max_workers
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Job] = deque()
        self._idle = 0  # workers waiting for a job
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
               after: Callable[[], None] | None = None) -> Job:
        """Queue ``fn``; it runs as soon as a worker is free (a new one is started if allowed).

        ``after`` runs on the same worker once ``fn`` returned *and the worker is counted free*:
        publish a job's result there, so that whoever reacts to it (submitting the next job) finds
        the worker available instead of starting another thread. A retired job's ``after`` runs
        too (late), on the worker that then leaves the pool.
        """
        job = Job(fn, name, after)
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            self._queue.append(job)
            if self._idle >= len(self._queue):
                self._cond.notify()
            elif self._workers < self._max:
                self._workers += 1
                self._idle += 1  # free from its creation: else a round may start one too many
                self._started += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self._started}", daemon=True
                )
                thread.start()
        return job

    def retire(self, job: Job) -> None:
        """Write off the worker running (or about to run) ``job``: it leaves the pool when ``job``
        returns, and its place is free at once for a new worker."""
        with self._cond:
            if job.retired or job.done:
                return
            job.retired = True
            self._workers -= 1
            if self._queue and self._workers < self._max and self._idle < len(self._queue):
                self._workers += 1
                self._idle += 1
                self._started += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True).start()

    def close(self) -> None:
        """No more jobs: idle workers exit now, busy ones after their job."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _work(self) -> None:  # counted idle by whoever started it
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                self._idle -= 1
                if not self._queue:  # closed
                    self._workers -= 1
                    return
                job = self._queue.popleft()
            try:
                job.fn()
            except BaseException:  # the job's own handler failed; the worker lives on
                log.exception("worker job %s failed", job.name)
            with self._cond:
                job.done = True
                retired = job.retired  # written off while it ran: already not counted
                if not retired:
                    self._idle += 1  # free again before the result is published (see submit)
            if job.after is not None:
                try:
                    job.after()
                except BaseException:
                    log.exception("worker job %s failed", job.name)
            if retired:
                return
