"""The worker pool under the check scheduler: lanes, spilling over, the bound, written-off workers."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.workers import WorkerPool


def wait_for(predicate: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ran: list[tuple[str, str]] = []  # (job, thread)

    def job(self, name: str, block: threading.Event | None = None) -> Callable[[], None]:
        def run() -> None:
            with self.lock:
                self.ran.append((name, threading.current_thread().name))
            if block is not None:
                block.wait(30)
        return run

    def threads(self) -> set[str]:
        with self.lock:
            return {thread for _, thread in self.ran}


def test_a_burst_of_quick_jobs_runs_in_order_on_one_worker() -> None:
    rec, gate = Recorder(), threading.Event()
    pool = WorkerPool(8, name="lane", spill_after=30.0)
    try:
        pool.submit(rec.job("gate", gate))  # holds the queue until the whole burst is in
        for i in range(16):
            pool.submit(rec.job(f"j{i}"))
        gate.set()
        wait_for(lambda: len(rec.ran) == 17)
        assert [name for name, _ in rec.ran] == ["gate"] + [f"j{i}" for i in range(16)]
        assert len(rec.threads()) == 1
        assert pool.threads_started <= 2  # the worker, and at most one idle watcher
    finally:
        pool.close()


def test_jobs_behind_a_slow_one_spill_over_to_another_worker() -> None:
    rec, slow = Recorder(), threading.Event()
    pool = WorkerPool(8, name="lane", spill_after=0.1)
    try:
        pool.submit(rec.job("slow", slow))
        for i in range(5):
            pool.submit(rec.job(f"quick{i}"))
        wait_for(lambda: len(rec.ran) == 6)  # while "slow" still blocks its worker
        assert not slow.is_set()
        assert len(rec.threads()) >= 2  # (more than one helper if the machine is slow)
    finally:
        slow.set()
        pool.close()


def test_each_slow_job_of_a_burst_gets_its_own_worker_in_turn() -> None:
    rec, slow, quick = Recorder(), threading.Event(), threading.Event()
    pool = WorkerPool(4, name="lane", spill_after=0.05)
    try:
        for i in range(3):
            pool.submit(rec.job(f"slow{i}", slow))
        pool.submit(quick.set)
        assert quick.wait(5), "a quick job waited behind three slow ones with a fourth worker free"
        assert len(rec.ran) == 3 and not slow.is_set()
    finally:
        slow.set()
        pool.close()


def test_without_lanes_jobs_run_at_once_up_to_the_bound() -> None:
    barrier = threading.Barrier(4, timeout=10)
    pool = WorkerPool(4, name="eager")  # spill_after=0: every job to a free worker at once
    done: list[int] = []
    try:
        for i in range(4):
            pool.submit(lambda i=i: (barrier.wait(), done.append(i)))  # needs all 4 running together
        wait_for(lambda: len(done) == 4)
    finally:
        pool.close()


def test_no_more_than_max_workers_run_at_once() -> None:
    rec, block = Recorder(), threading.Event()
    pool = WorkerPool(2, name="bound", spill_after=0.02)
    try:
        for i in range(3):
            pool.submit(rec.job(f"b{i}", block))
        wait_for(lambda: len(rec.ran) == 2)
        time.sleep(0.2)
        assert len(rec.ran) == 2, "a third job ran beside two busy workers with max_workers=2"
        block.set()
        wait_for(lambda: len(rec.ran) == 3)
    finally:
        block.set()
        pool.close()


def test_a_retired_job_frees_its_place_for_a_fresh_worker() -> None:
    rec, stuck = Recorder(), threading.Event()
    pool = WorkerPool(1, name="one", spill_after=0.02)
    try:
        hung = pool.submit(rec.job("hung", stuck))
        pool.submit(rec.job("next"))
        wait_for(lambda: len(rec.ran) == 1)
        time.sleep(0.1)
        assert len(rec.ran) == 1  # the only worker is stuck
        pool.retire(hung)
        wait_for(lambda: len(rec.ran) == 2)  # a fresh worker took the queued job
        assert len(rec.threads()) == 2
        assert pool.workers == 1
    finally:
        stuck.set()
        pool.close()


def test_random_mix_every_job_runs_once_within_the_bound() -> None:
    """Quick, slow and stuck jobs submitted from several threads, stuck ones retired (as the
    scheduler does on a timeout): every job runs exactly once, and never do more than
    ``max_workers`` jobs that are not written off run at once."""
    rng = random.Random(7)
    pool = WorkerPool(3, name="mix", spill_after=0.01)
    lock = threading.Lock()
    ran: dict[int, int] = {}
    active: set[int] = set()  # running and not written off
    written_off: set[int] = set()
    peak = [0]
    stuck = threading.Event()

    def make(i: int, kind: str) -> Callable[[], None]:
        def run() -> None:
            with lock:
                ran[i] = ran.get(i, 0) + 1
                if i not in written_off:
                    active.add(i)
                    peak[0] = max(peak[0], len(active))
            if kind == "slow":
                time.sleep(rng.uniform(0.001, 0.03))
            elif kind == "stuck":
                stuck.wait(30)
            with lock:
                active.discard(i)
        return run

    def submitter(first: int) -> None:
        for i in range(first, first + 100):
            kind = rng.choice(["quick"] * 6 + ["slow"] * 3 + ["stuck"])
            job = pool.submit(make(i, kind), f"j{i}")
            if kind == "stuck":
                time.sleep(0.02)
                with lock:
                    written_off.add(i)
                    pool.retire(job)
                    active.discard(i)
            time.sleep(rng.uniform(0, 0.002))

    try:
        threads = [threading.Thread(target=submitter, args=(n * 100,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stuck.set()
        wait_for(lambda: len(ran) == 300, deadline=30)
        time.sleep(0.05)
        assert set(ran.values()) == {1}, "a job ran twice"
        assert peak[0] <= 3, f"{peak[0]} jobs ran at once with max_workers=3"
    finally:
        stuck.set()
        pool.close()


@pytest.mark.parametrize("spill", [0.0, 0.01])
def test_like_a_thread_pool_executor_every_job_runs_once_and_failures_do_not_kill_workers(
    spill: float, caplog: pytest.LogCaptureFixture,
) -> None:
    """The same jobs, some raising, through ThreadPoolExecutor (what the pool stands in for) and
    through WorkerPool: each job runs exactly once in both; a job's exception is the job's (the
    executor keeps it in its future, the pool logs it) and the worker goes on with the next job, so
    the pool never starts more than its bound of threads."""

    def jobs(ran: list[int], lock: threading.Lock) -> list[Callable[[], None]]:
        def make(i: int) -> Callable[[], None]:
            def run() -> None:
                with lock:
                    ran.append(i)
                if i % 3 == 0:
                    time.sleep(0.001)
                if i % 7 == 0:
                    raise ValueError(f"job {i} failed")
            return run
        return [make(i) for i in range(200)]

    executor_ran: list[int] = []
    with ThreadPoolExecutor(3) as executor:
        futures = [executor.submit(job) for job in jobs(executor_ran, threading.Lock())]
    executor_failed = sorted(i for i, f in enumerate(futures) if f.exception() is not None)

    pool_ran: list[int] = []
    lock = threading.Lock()
    pool = WorkerPool(3, name="like-executor", spill_after=spill)
    try:
        with caplog.at_level(logging.ERROR, logger="agent.workers"):
            for job in jobs(pool_ran, lock):
                pool.submit(job, "job")
            wait_for(lambda: len(pool_ran) == 200)
            time.sleep(0.05)  # (any second run of a job would show up now)
            late: list[int] = []
            pool.submit(lambda: late.append(1), "after the failures")
            wait_for(lambda: late == [1])
        pool_failed = sorted(int(r.exc_info[1].args[0].split()[1]) for r in caplog.records
                             if r.exc_info and isinstance(r.exc_info[1], ValueError))
        assert sorted(pool_ran) == sorted(executor_ran) == list(range(200))
        assert pool_failed == executor_failed == list(range(0, 200, 7))
        assert pool.threads_started <= 3 and pool.workers <= 3
    finally:
        pool.close()
