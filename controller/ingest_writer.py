"""Group commit: one writer thread stores the reports of concurrent requests in shared transactions.

::

    request (event loop) ──submit()──▶ queue ──▶ writer thread: take up to ``max_batch`` waiting
         ▲                                        reports, parse each, one transaction for all,
         └──────── future resolved after COMMIT ◀─ commit, then answer every request of the batch

A 2xx still means stored: every request of a batch is answered only after the batch's transaction
committed. Per report the rules of :mod:`controller.ingest` hold unchanged: a refused report
(401/403/422) raises before anything of it is written, so the other reports of its batch are
unaffected; a duplicate (host, seq) — also within one batch — is answered "duplicate". A database
error rolls the whole batch back; its reports are then stored again one per transaction
(:func:`controller.ingest.ingest`), so one bad report never fails the others and nothing partial is
kept.

One writer thread by default (``writers=N`` allows more, for PostgreSQL; each batch takes its row
locks in token order, so two batches never deadlock). Threads start on demand and end after
``idle_seconds`` without work (no lifecycle hooks needed; new ones start on the next submit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.errors import InvalidReportError
from controller.ingest import IngestResult, Prepared, ingest, prepare, store_batch
from controller.store.db import Database

log = logging.getLogger("boxkeeper.controller.ingest")


@dataclass
class _Job:
    token: str
    body: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestResult]
    parsed: Prepared | InvalidReportError | None = None
    outcome: IngestResult | BaseException | None = field(default=None)


def _settle(jobs: list[_Job]) -> None:
    """On the event loop: hand each job's outcome to its waiting request."""
    for job in jobs:
        if job.future.done():  # the client went away
            continue
        if isinstance(job.outcome, BaseException):
            job.future.set_exception(job.outcome)
        elif job.outcome is not None:
            job.future.set_result(job.outcome)


class IngestWriter:
    """``await writer.submit(token, body)`` → IngestResult (or the IngestError / database error)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time, max_batch: int = 64,
                 writers: int = 1, idle_seconds: float = 2.0) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max_batch
        # SQLite has one writer at a time anyway. On PostgreSQL several writers overlap round trips
        # and commits (batches lock host rows in token order: no deadlock between them), but 2 or 4
        # gave no more reports/s than 1 in the benchmark and a worse p99: the default is 1.
        self.writers = writers
        self.idle_seconds = idle_seconds
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._threads = 0
        self._idle = 0
        self.batches = 0  # committed batches and the reports in them (to see the batching work)
        self.batched_reports = 0

    async def submit(self, token: str, body: bytes) -> IngestResult:
        loop = asyncio.get_running_loop()
        job = _Job(token, body, loop, loop.create_future())
        with self._cond:
            self._queue.append(job)
            if self._idle:
                self._cond.notify()
            elif self._threads < self.writers:
                self._threads += 1
                threading.Thread(target=self._run, name="boxkeeper-ingest-writer", daemon=True).start()
        return await job.future

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._idle += 1
                    self._cond.wait(self.idle_seconds)
                    self._idle -= 1
                    if not self._queue:
                        self._threads -= 1
                        return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_batch))]
            for job in batch:
                job.parsed = prepare(job.body)
            # While another process holds the database's write lock (serve --workers N on SQLite),
            # parse what has arrived meanwhile instead of waiting: the batch grows, and the lock and
            # the per-transaction costs are taken once for all of it.
            while len(batch) < self.max_batch and self.db.writer_busy():
                with self._cond:
                    room = min(len(self._queue), self.max_batch - len(batch))
                    more = [self._queue.popleft() for _ in range(room)]
                if not more:
                    break
                for job in more:
                    job.parsed = prepare(job.body)
                batch += more
            # Row locks are taken in token order (a stable sort: one host's reports keep their order).
            batch.sort(key=lambda job: job.token)
            try:
                self._process(batch)
            except BaseException as exc:  # never leave a request waiting
                for job in batch:
                    if job.outcome is None:
                        job.outcome = exc
            self._answer(batch)

    def _answer(self, batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, jobs)

    def _process(self, batch: list[_Job]) -> None:
        try:
            with self.db.transaction() as conn:
                jobs = [(job.token, job.parsed) for job in batch if job.parsed is not None]
                outcomes = store_batch(conn, jobs, self.clock())
        except Exception as exc:
            # The batch is rolled back: store each report on its own (a race on (host, seq) becomes
            # "duplicate", a failing report fails alone).
            if len(batch) > 1:
                log.warning("group commit of %d reports failed (%s): storing them one by one",
                            len(batch), type(exc).__name__)
            for job in batch:
                try:
                    job.outcome = ingest(self.db, job.token, job.body, clock=self.clock)
                except Exception as single:
                    job.outcome = single
            return
        self.batches += 1
        self.batched_reports += len(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            job.outcome = outcome
