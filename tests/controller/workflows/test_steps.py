"""Step kinds judged on their own: http (status, error page with 200), wait_healthy (no data = failure),
wait_host (a rebooting host: unreachable, then back; a deadline; a changed host key is not waited out)."""

from __future__ import annotations

import re

import httpx
import pytest

from controller.redact import Redactor
from controller.workflows.errors import ConnectError, ConnectionLostError, HostKeyMismatchError
from controller.workflows.steps.base import HealthView, Step, StepContext, run_step
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.wait_healthy import WaitHealthyAction
from controller.workflows.steps.wait_host import WaitHostAction
from tests.controller.workflows.fakes import FakeExecutor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Health:
    def __init__(self, views: list[HealthView]) -> None:
        self.views = views

    def latest(self, host: str) -> HealthView:
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]


def ctx(http: httpx.Client | None = None, health: Health | None = None,
        clock: Clock | None = None, executor: FakeExecutor | None = None) -> StepContext:
    clock = clock or Clock()
    return StepContext("box1", executor or FakeExecutor(), {"url": "http://portal.test/"},
                       Redactor(["s3cret"]), http, health, clock, clock.sleep)


def portal(status: int, body: str) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, text=body)))


ERRORS = re.compile("DB query error|Fatal error")


def test_http_step_checks_status_and_error_pages() -> None:
    action = HttpAction(url="{{ url }}", body_regex=re.compile("PORTAL_OK"), body_not_regex=ERRORS)
    step = Step("portal", action, 10)
    assert run_step(step, ctx(portal(200, "<p>PORTAL_OK</p>"))).ok
    failed = run_step(step, ctx(portal(500, "oops")))
    assert not failed.ok and failed.exit_code == 500 and "HTTP 500" in failed.message
    silent = run_step(step, ctx(portal(200, "<b>DB query error.</b> token s3cret")))
    assert not silent.ok and "error pattern" in silent.message
    assert "s3cret" not in silent.stdout and "***" in silent.stdout
    assert "lacks" in run_step(step, ctx(portal(200, "hello"))).message


def test_wait_healthy_needs_reports_and_no_hard_critical() -> None:
    step = Step("soak", WaitHealthyAction(soak=30, poll=10), 90)
    clock = Clock()
    fresh = HealthView(last_report_at=clock.now + 5)
    assert run_step(step, ctx(health=Health([fresh]), clock=clock)).ok
    clock = Clock()
    stale = HealthView(last_report_at=clock.now - 600)
    no_data = run_step(step, ctx(health=Health([stale]), clock=clock))
    assert not no_data.ok and "no data = failure" in no_data.message
    clock = Clock()
    critical = Health([HealthView(clock.now), HealthView(clock.now + 10, ("portal",))])
    bad = run_step(step, ctx(health=critical, clock=clock))
    assert not bad.ok and "hard CRITICAL: portal" in bad.message
    assert not run_step(step, ctx(health=None)).ok


def rebooting_host(clock: Clock, down_until: float) -> FakeExecutor:
    """Drops the connection, then refuses connections until ``down_until``, then answers."""
    host = FakeExecutor()
    host.drop_connection()

    def probe(text: str) -> tuple[int, str, str]:
        if clock.now < down_until:
            raise ConnectError("box1", "cannot connect to 127.0.0.1:22: connection refused")
        return (0, "boot id new\n", "")
    return host.on(r"boot-id", probe)


def test_wait_host_waits_out_a_reboot() -> None:
    clock = Clock()
    host = rebooting_host(clock, down_until=clock.now + 42)
    step = Step("back", WaitHostAction(command="boot-id", poll=5), 300)
    outcome = run_step(step, ctx(clock=clock, executor=host))
    assert outcome.ok and "boot id new" in outcome.stdout
    assert 1042 <= clock.now < 1050  # polled every 5 s; passed at the first probe once back


def test_wait_host_fails_at_its_deadline_naming_the_last_problem() -> None:
    clock = Clock()
    host = rebooting_host(clock, down_until=clock.now + 10_000)
    step = Step("back", WaitHostAction(command="boot-id", poll=5), 60)
    outcome = run_step(step, ctx(clock=clock, executor=host))
    assert not outcome.ok and "host not back within 60 s" in outcome.message
    assert "connection refused" in outcome.message
    assert clock.now <= 1060  # no probe after the deadline

    up_but_old = FakeExecutor().on(r"boot-id", (1, "boot id old\n", ""))
    outcome = run_step(Step("back", WaitHostAction(command="boot-id", poll=5), 20), ctx(executor=up_but_old))
    assert not outcome.ok and "probe exited 1" in outcome.message and up_but_old.ran("boot-id") == 5


def test_wait_host_does_not_wait_out_a_changed_host_key() -> None:
    host = FakeExecutor().on(r"boot-id", HostKeyMismatchError("box1", "host key differs from the pinned key"))
    with pytest.raises(HostKeyMismatchError):
        run_step(Step("back", WaitHostAction(command="boot-id"), 300), ctx(executor=host))
    lost = FakeExecutor().on(r"boot-id", ConnectionLostError("box1", "lost"), once=True)
    assert run_step(Step("back", WaitHostAction(command="boot-id"), 300), ctx(executor=lost)).ok
