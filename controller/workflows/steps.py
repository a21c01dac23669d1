"""Run one playbook step against a host and decide, from exit code AND output AND state, if it passed.

A step never trusts an exit code alone: ``ok_codes``, ``success_regex`` and ``failure_regex`` are
all checked (Bitrix's backup.php exits 0 when it fails). Outputs are redacted before they leave
this module; a captured secret is added to the redactor before anything is recorded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from controller.workflows.executor import Command, CommandResult, Executor
from controller.workflows.playbook import (
    GetAction,
    HttpAction,
    PutAction,
    RunAction,
    Step,
    TestinfraAction,
    WaitHealthyAction,
)
from controller.workflows.template import Redactor, Value, render_plain, render_shell


@dataclass(frozen=True)
class HealthView:
    """What the controller knows of a host's own checks: last report time and hard CRITICAL checks."""

    last_report_at: float | None
    hard_critical: tuple[str, ...] = ()


class HealthSource(Protocol):
    def latest(self, host: str) -> HealthView: ...


class TestinfraTarget(Protocol):
    def testinfra_args(self, workdir: Path) -> list[str]: ...


@dataclass(frozen=True)
class StepOutcome:
    ok: bool
    command: str | None  # redacted
    exit_code: int | None = None
    duration: float | None = None
    stdout: str = ""  # redacted tails
    stderr: str = ""
    message: str = ""
    captured: dict[str, str] = field(default_factory=dict)  # name → value (raw; secrets marked)


@dataclass
class StepContext:
    host: str
    executor: Executor
    values: Mapping[str, Value]
    redact: Redactor
    http: httpx.Client | None
    health: HealthSource | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def _output(result: CommandResult) -> str:
    return result.stdout_tail + "\n" + result.stderr_tail


def _judge(action: RunAction, result: CommandResult) -> str | None:
    """Why the result is a failure, or None."""
    if result.timed_out:
        return f"timed out after {result.duration:.0f} s (killed on the host)"
    if result.exit_code not in action.ok_codes:
        return f"exit code {result.exit_code} not in {list(action.ok_codes)}"
    text = _output(result)
    if action.failure_regex and (m := action.failure_regex.search(text)):
        return f"output matches failure pattern: {m.group(0)[:200]!r}"
    if action.success_regex and not action.success_regex.search(text):
        return f"output lacks the success pattern {action.success_regex.pattern!r}"
    return None


def timeout_of(step: Step, values: Mapping[str, Value]) -> float:
    if step.timeout_var is None:
        return step.timeout
    value = values[step.timeout_var]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else step.timeout


def _run(step: Step, action: RunAction, ctx: StepContext) -> StepOutcome:
    text = render_shell(action.command, ctx.values)
    timeout = timeout_of(step, ctx.values)
    attempts = action.until.attempts if action.until else 1
    result: CommandResult | None = None
    total = 0.0
    problem: str | None = None
    for attempt in range(1, attempts + 1):
        result = ctx.executor.run(Command(text, ctx.redact(text)), timeout)
        total += result.duration
        problem = _judge(action, result)
        if problem or action.until is None:
            break
        output = _output(result)
        done = ((action.until.regex is None or action.until.regex.search(output) is not None)
                and (action.until.not_regex is None or action.until.not_regex.search(output) is None))
        if done:
            break
        problem = f"still not done after {attempt} attempt(s)"
        if attempt < attempts:
            ctx.sleep(action.until.delay)
    assert result is not None
    captured: dict[str, str] = {}
    if problem is None and action.capture:
        match = action.capture.regex.search(result.stdout_tail)
        if match is None:
            problem = f"capture {action.capture.name}: {action.capture.regex.pattern!r} not found in output"
        else:
            captured[action.capture.name] = match.group(1)
            if action.capture.secret:
                ctx.redact.add(match.group(1))
    return StepOutcome(problem is None, ctx.redact(result.command_redacted), result.exit_code, total,
                       ctx.redact(result.stdout_tail), ctx.redact(result.stderr_tail), problem or "",
                       captured)


def _http(step: Step, action: HttpAction, ctx: StepContext) -> StepOutcome:
    url = render_plain(action.url, ctx.values)
    shown = ctx.redact(f"GET {url}")
    started = ctx.clock()
    try:
        if ctx.http is not None:
            response = ctx.http.get(url, timeout=step.timeout, follow_redirects=True)
        else:
            with httpx.Client(verify=True) as client:  # TLS verified by default
                response = client.get(url, timeout=step.timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return StepOutcome(False, shown, None, ctx.clock() - started, message=f"request failed: {exc}")
    body = response.text
    problem = None
    if response.status_code not in action.status:
        problem = f"HTTP {response.status_code}, expected {list(action.status)}"
    elif action.body_not_regex and (m := action.body_not_regex.search(body)):
        problem = f"body matches the error pattern: {m.group(0)[:200]!r}"
    elif action.body_regex and not action.body_regex.search(body):
        problem = f"body lacks {action.body_regex.pattern!r}"
    return StepOutcome(problem is None, shown, response.status_code, ctx.clock() - started,
                       ctx.redact(body[-4000:]), "", problem or "")


def _wait_healthy(action: WaitHealthyAction, ctx: StepContext) -> StepOutcome:
    shown = f"wait_healthy soak={action.soak:g}s"
    if ctx.health is None:
        return StepOutcome(False, shown, message="no health source (agent reports): no data = failure")
    started = ctx.clock()
    while True:
        view = ctx.health.latest(ctx.host)
        if view.hard_critical:
            return StepOutcome(False, shown, None, ctx.clock() - started,
                               message=f"hard CRITICAL: {', '.join(view.hard_critical)}")
        if ctx.clock() - started >= action.soak:
            break
        ctx.sleep(action.poll)
    if view.last_report_at is None or view.last_report_at < started:
        return StepOutcome(False, shown, None, ctx.clock() - started,
                           message="no agent report during the soak period (no data = failure)")
    return StepOutcome(True, shown, None, ctx.clock() - started, message="no hard CRITICAL during the soak")


def _testinfra(step: Step, action: TestinfraAction, ctx: StepContext) -> StepOutcome:
    shown = f"testinfra {action.module}"
    target = ctx.executor
    if not hasattr(target, "testinfra_args"):
        return StepOutcome(False, shown, message="testinfra needs an SSH executor")
    started = ctx.clock()
    with tempfile.TemporaryDirectory(prefix="boxkeeper-testinfra-") as tmp:
        args = target.testinfra_args(Path(tmp))
        (Path(tmp) / "pytest.ini").write_text("[pytest]\n")  # not the project's settings
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "testinfra.plugin",
                "-c", f"{tmp}/pytest.ini", "-W", "ignore::DeprecationWarning", *args, str(action.module)]
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only testinfra: starts in 1 s, not 5
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=step.timeout, check=False,
                                  env=env)
        except subprocess.TimeoutExpired:
            return StepOutcome(False, shown, None, ctx.clock() - started, message="testinfra timed out")
    ok = proc.returncode == 0
    return StepOutcome(ok, shown, proc.returncode, ctx.clock() - started, ctx.redact(proc.stdout[-4000:]),
                       ctx.redact(proc.stderr[-4000:]), "" if ok else "testinfra tests failed")


def run_step(step: Step, ctx: StepContext) -> StepOutcome:
    """Run one step (with its ``retry``). Executor errors (host unreachable) propagate to the engine."""
    outcome = StepOutcome(False, None)
    for attempt in range(1, step.retry.attempts + 1):
        outcome = _once(step, ctx)
        if outcome.ok:
            return outcome
        if attempt < step.retry.attempts:
            ctx.sleep(step.retry.delay)
    return outcome


def _once(step: Step, ctx: StepContext) -> StepOutcome:
    a = step.action
    if isinstance(a, RunAction):
        return _run(step, a, ctx)
    if isinstance(a, HttpAction):
        return _http(step, a, ctx)
    if isinstance(a, PutAction | GetAction):
        src, dest = render_plain(a.src, ctx.values), render_plain(a.dest, ctx.values)
        verb = "put" if isinstance(a, PutAction) else "get"
        started = ctx.clock()
        (ctx.executor.put if verb == "put" else ctx.executor.get)(src, dest)
        return StepOutcome(True, ctx.redact(f"{verb} {src} {dest}"), None, ctx.clock() - started)
    if isinstance(a, WaitHealthyAction):
        return _wait_healthy(a, ctx)
    return _testinfra(step, a, ctx)


#: kind name of each action type, as stored in the timeline
def kind_of(step: Step) -> str:
    return re.sub(r"Action$", "", type(step.action).__name__).lower().replace("waithealthy", "wait_healthy")
