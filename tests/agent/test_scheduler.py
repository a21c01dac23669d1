"""The check scheduler: intervals, retries, timeouts, hung checks, the worker bound, callbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.checks.base import CheckResult
from agent.config import CheckSpec, parse
from agent.report import CheckReport, Status
from agent.scheduler import CheckScheduler
from tests.agent.builders import command_check
from tests.agent.conftest import FakeClock, pid_alive, voluntary_switches

OK, WARN, CRIT, UNK = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN


class FakeCheck:
    """Returns scripted statuses; optionally blocks until released."""

    type = "fake"

    def __init__(self, name: str, statuses: list[Status] | None = None, *, block: bool = False) -> None:
        self.name = name
        self.statuses = list(statuses or [OK])
        self.started = 0
        self.finished = 0
        self.release = threading.Event()
        if not block:
            self.release.set()
        self._lock = threading.Lock()

    def run(self, timeout: float) -> CheckResult:
        with self._lock:
            self.started += 1
            n = self.started
        self.release.wait(60)
        status = self.statuses[min(n, len(self.statuses)) - 1]
        with self._lock:
            self.finished += 1
        return CheckResult(status, f"{self.name} run {n}: {status.name}")


class Crashing:
    name = "crashy"
    type = "fake"

    def run(self, timeout: float) -> CheckResult:
        raise RuntimeError("boom")


def cfg(
    name: str, *, interval: float = 10, timeout: float = 1, retries: int = 1, retry_interval: float = 2
) -> CheckSpec:
    return parse(
        {
            "checks": [
                {
                    "name": name,
                    "type": "tcp",
                    "address": "127.0.1.1:1",
                    "interval": interval,
                    "timeout": timeout,
                    "retries": retries,
                    "retry_interval": retry_interval,
                }
            ]
        }
    ).checks[0]


def wait_for(predicate: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def step(sched: CheckScheduler, *checks: FakeCheck) -> None:
    """One tick, wait for the runs it started to finish (blocked ones time out), tick again to collect."""
    sched.tick()
    assert sched.wait_idle(10, names={c.name for c in checks if c.release.is_set()})
    sched.tick()


def by_name(reports: tuple[CheckReport, ...]) -> dict[str, CheckReport]:
    return {r.name: r for r in reports}


# -- unit: fake clock ---------------------------------------------------------------------------


def test_pending_before_the_first_run(fake_clock: FakeClock) -> None:
    sched = CheckScheduler([(cfg("a"), FakeCheck("a"))], clock=fake_clock, wall=fake_clock)
    (report,) = sched.snapshot()
    assert (report.name, report.status, report.hard, report.summary) == ("a", UNK, False, "pending")


def test_each_check_runs_at_its_interval(fake_clock: FakeClock) -> None:
    fast, slow = FakeCheck("fast"), FakeCheck("slow")
    sched = CheckScheduler(
        [(cfg("fast", interval=5), fast), (cfg("slow", interval=20), slow)], clock=fake_clock, wall=fake_clock
    )
    for _ in range(8):  # 0, 5, ... 35 s
        step(sched, fast, slow)
        fake_clock.advance(5)
    assert (fast.started, slow.started) == (8, 2)
    assert by_name(sched.snapshot())["fast"].summary == "fast run 8: OK"


def test_soft_failures_are_retried_at_retry_interval(fake_clock: FakeClock) -> None:
    check = FakeCheck("portal", [CRIT] * 10)
    sched = CheckScheduler(
        [(cfg("portal", interval=60, retries=3, retry_interval=5), check)], clock=fake_clock, wall=fake_clock
    )
    seen = []
    for _ in range(15):  # 0..70 s in 5 s steps
        step(sched, check)
        report = sched.snapshot()[0]
        seen.append((fake_clock.now - 1000, check.started, report.attempt, report.hard))
        fake_clock.advance(5)
    # runs at 0 (soft 1), 5 (soft 2), 10 (hard 3), then every 60 s: next at 70
    assert [s[1] for s in seen] == [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert seen[2][2:] == (3, True)


def test_on_hard_change_fires_for_first_and_changed_hard_states_only(fake_clock: FakeClock) -> None:
    events: list[CheckReport] = []
    check = FakeCheck("portal", [OK, CRIT, CRIT, CRIT, CRIT, OK])
    sched = CheckScheduler(
        [(cfg("portal", interval=1, retries=3, retry_interval=1), check)],
        on_hard_change=events.append,
        clock=fake_clock,
        wall=fake_clock,
    )
    for _ in range(6):
        step(sched, check)
        fake_clock.advance(1)
    assert [(e.status, e.hard, e.attempt) for e in events] == [(OK, True, 1), (CRIT, True, 3), (OK, True, 1)]
    assert events[1].last_change == 1003.0


def test_a_crashing_check_is_unknown(fake_clock: FakeClock) -> None:
    sched = CheckScheduler([(cfg("crashy"), Crashing())], clock=fake_clock, wall=fake_clock)

    def collected() -> bool:
        sched.tick()
        return sched.snapshot()[0].summary != "pending"

    wait_for(collected)
    report = sched.snapshot()[0]
    assert report.status is UNK
    assert report.summary == "check crashed: RuntimeError: boom"


def test_hung_check_times_out_is_not_restarted_and_others_keep_running(fake_clock: FakeClock) -> None:
    hung, other = FakeCheck("hung", block=True), FakeCheck("other")
    sched = CheckScheduler(
        [
            (cfg("hung", interval=5, timeout=2, retries=2, retry_interval=5), hung),
            (cfg("other", interval=5), other),
        ],
        clock=fake_clock,
        wall=fake_clock,
        grace=0.5,
    )
    try:
        step(sched, other)
        assert sched.snapshot()[0].summary == "pending"
        fake_clock.advance(2.5)  # timeout + grace
        sched.tick()
        report = by_name(sched.snapshot())["hung"]
        assert (report.status, report.summary, report.hard) == (UNK, "timed out after 2s", False)
        for _ in range(3):
            fake_clock.advance(2.5)
            step(sched, other)
        report = by_name(sched.snapshot())["hung"]
        assert report.status is UNK and report.hard  # second attempt of 2
        assert report.summary.startswith("still hung since ")
        assert report.summary.endswith("(timed out after 2s)")
        assert hung.started == 1, "a hung check was started again"
        assert other.finished >= 2, "the other check stopped running"
    finally:
        hung.release.set()
    # the stuck run ends (its late result is dropped); the check runs again when next due
    wait_for(lambda: hung.finished == 1)
    fake_clock.advance(5)
    step(sched, hung, other)
    assert hung.started == 2
    assert by_name(sched.snapshot())["hung"].summary == "hung run 2: OK"


def test_worker_bound_and_abandoned_runs_free_their_slot(fake_clock: FakeClock) -> None:
    checks = [FakeCheck(f"c{i}", block=True) for i in range(3)]
    sched = CheckScheduler(
        [(cfg(c.name, timeout=1, interval=100), c) for c in checks],
        clock=fake_clock,
        wall=fake_clock,
        max_workers=2,
        grace=0.5,
    )
    try:
        sched.tick()
        wait_for(lambda: sum(c.started for c in checks) == 2)
        time.sleep(0.05)
        assert sum(c.started for c in checks) == 2  # the third waits for a slot
        fake_clock.advance(1.5)
        sched.tick()  # both time out, slots are free, the third starts
        wait_for(lambda: checks[2].started == 1)
    finally:
        for c in checks:
            c.release.set()


def test_callback_errors_do_not_stop_the_scheduler(fake_clock: FakeClock) -> None:
    def broken(report: CheckReport) -> None:
        raise ValueError("bad callback")

    check = FakeCheck("a", [OK, CRIT])
    sched = CheckScheduler(
        [(cfg("a", interval=1), check)], on_hard_change=broken, clock=fake_clock, wall=fake_clock
    )
    step(sched, check)
    fake_clock.advance(1)
    step(sched, check)
    assert sched.snapshot()[0].status is CRIT


# -- real threads and real time -----------------------------------------------------------------


@pytest.mark.integration
def test_run_once_reports_a_check_that_blocks_forever_while_others_report() -> None:
    blocker = FakeCheck("forever", block=True)
    fine, failing = FakeCheck("fine", [OK]), FakeCheck("failing", [CRIT])
    sched = CheckScheduler(
        [(cfg("forever", timeout=0.5), blocker), (cfg("fine"), fine), (cfg("failing", retries=3), failing)],
        grace=0.2,
    )
    try:
        reports = by_name(sched.run_once())
        assert (reports["forever"].status, reports["forever"].summary) == (UNK, "timed out after 0.5s")
        assert reports["fine"].status is OK
        assert (reports["failing"].status, reports["failing"].hard) == (CRIT, False)
        again = by_name(sched.run_once())
        assert again["forever"].summary.startswith("still hung since ")
        assert blocker.started == 1
        assert fine.started == 2
    finally:
        blocker.release.set()


@pytest.mark.integration
def test_background_scheduler_keeps_running_beside_a_hung_check() -> None:
    blocker = FakeCheck("forever", block=True)
    ticker = FakeCheck("ticker", [OK, CRIT] + [OK] * 100)
    events: list[tuple[str, Status, str]] = []
    sched = CheckScheduler(
        [(cfg("forever", interval=0.3, timeout=0.3), blocker), (cfg("ticker", interval=0.1), ticker)],
        on_hard_change=lambda r: events.append((r.name, r.status, threading.current_thread().name)),
        grace=0.1,
    )
    sched.start()
    try:
        wait_for(
            lambda: ticker.finished >= 10 and "still hung" in by_name(sched.snapshot())["forever"].summary
        )
    finally:
        sched.stop()
        blocker.release.set()
    assert blocker.started == 1
    assert ("ticker", CRIT, "check-scheduler") in events
    assert ("forever", UNK, "check-scheduler") in events
    started = ticker.started
    time.sleep(0.3)
    assert ticker.started == started, "checks still started after stop()"


@pytest.mark.integration
def test_hanging_command_is_unknown_and_its_process_is_gone(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    command = command_check("hang", ("/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 1000"))
    sched = CheckScheduler([(cfg("hang", timeout=1), command), (cfg("ok"), FakeCheck("ok"))])
    reports = by_name(sched.run_once())
    assert (reports["hang"].status, reports["hang"].summary) == (UNK, "timed out after 1s")
    assert reports["ok"].status is OK
    pid = int(pidfile.read_text())
    wait_for(lambda: not pid_alive(pid))


@pytest.mark.integration
def test_stop_kills_plugins_still_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    command = command_check("slow", ("/bin/sh", "-c", f"echo $$ > {pidfile}; exec sleep 1000"))
    sched = CheckScheduler([(cfg("slow", timeout=600), command)])
    sched.start()
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        pid = int(pidfile.read_text())
        assert pid_alive(pid)
    finally:
        sched.stop()
    wait_for(lambda: not pid_alive(pid))
    assert command.run(5).summary == "not run: the agent is stopping"


# -- the worker pool ------------------------------------------------------------------------------


def test_worker_threads_are_reused_not_started_per_run(fake_clock: FakeClock) -> None:
    checks = [FakeCheck(f"c{i}") for i in range(3)]
    sched = CheckScheduler(
        [(cfg(c.name, interval=1), c) for c in checks], clock=fake_clock, wall=fake_clock, max_workers=8
    )
    for _ in range(10):
        step(sched, *checks)
        fake_clock.advance(1)
    assert [c.started for c in checks] == [10, 10, 10]
    assert sched.worker_threads_started <= 3  # at most one per check running at once, then reused


def test_a_hung_run_does_not_eat_the_pool(fake_clock: FakeClock) -> None:
    hung, other = FakeCheck("hung", block=True), FakeCheck("other")
    sched = CheckScheduler(
        [(cfg("hung", interval=1, timeout=1), hung), (cfg("other", interval=1), other)],
        clock=fake_clock,
        wall=fake_clock,
        max_workers=1,  # the hung run holds the only worker...
        grace=0.5,
    )
    try:
        sched.tick()
        wait_for(lambda: hung.started == 1)
        fake_clock.advance(1.5)
        sched.tick()  # ...until it times out: its worker is written off, a fresh one serves
        assert by_name(sched.snapshot())["hung"].summary.endswith("timed out after 1s)")  # still hung
        for _ in range(5):
            step(sched, other)
            fake_clock.advance(1)
        assert other.finished >= 5, "the other check starved behind the hung run"
        assert hung.started == 1, "a hung check was started again"
        assert sched.worker_threads_started == 2  # the stuck one and its replacement, no more
    finally:
        hung.release.set()
    wait_for(lambda: hung.finished == 1)  # the stuck worker ends; the check runs again when due
    step(sched, hung, other)
    assert hung.started == 2
    assert sched.worker_threads_started <= 3


@pytest.mark.integration
def test_the_scheduler_thread_sleeps_until_the_next_due_check() -> None:
    check = FakeCheck("slow-interval", [OK] * 10)
    sched = CheckScheduler([(cfg("slow-interval", interval=30), check)])
    sched.start()
    try:
        wait_for(lambda: check.finished == 1)
        time.sleep(0.2)
        thread = next(t for t in threading.enumerate() if t.name == "check-scheduler")
        before = voluntary_switches(thread)
        time.sleep(2.5)  # nothing is due for 30 s: no reason to wake (a 1 s cap woke it twice)
        assert voluntary_switches(thread) == before, "the idle scheduler thread woke up"
        assert check.started == 1
    finally:
        sched.stop()


@pytest.mark.integration
def test_a_check_runs_at_its_interval_even_when_its_timeout_is_longer() -> None:
    # the scheduler must wake for the next due time, not only for the running check's deadline
    check = FakeCheck("often", [OK] * 100)
    sched = CheckScheduler([(cfg("often", interval=0.2, timeout=30), check)])
    sched.start()
    try:
        wait_for(lambda: check.finished >= 5, deadline=15)  # every 31 s if it slept to the deadline
    finally:
        sched.stop()
