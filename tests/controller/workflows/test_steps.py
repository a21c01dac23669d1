"""Step kinds judged on their own: http (status, error page with 200), wait_healthy (no data = failure)."""

from __future__ import annotations

import re

import httpx

from controller.redact import Redactor
from controller.workflows.steps.base import HealthView, Step, StepContext, run_step
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.wait_healthy import WaitHealthyAction
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
        clock: Clock | None = None) -> StepContext:
    clock = clock or Clock()
    return StepContext("box1", FakeExecutor(), {"url": "http://portal.test/"}, Redactor(["s3cret"]), http,
                       health, clock, clock.sleep)


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


def test_run_captures_several_values_from_one_output_or_none() -> None:
    from controller.workflows.steps.run import RunAction

    action = RunAction.model_validate({"command": "settings", "captures": [
        {"name": "host", "regex": "^HOST=(.+)$"}, {"name": "pw", "regex": "^PW=(.+)$", "secret": True}]})
    step = Step("settings", action, 10)
    c = ctx()
    c.executor.on("settings", (0, "HOST=db1\nPW=hunter2\n", ""))  # type: ignore[attr-defined]
    outcome = run_step(step, c)
    assert outcome.ok and outcome.captured == {"host": "db1", "pw": "hunter2"}
    assert "hunter2" not in outcome.stdout  # a secret one of several is masked like a single one
    c.executor.on("settings", (0, "HOST=db1\n", ""))  # type: ignore[attr-defined]
    missing = run_step(step, c)
    assert not missing.ok and missing.captured == {} and "capture pw" in missing.message
