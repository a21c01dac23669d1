"""``run``: a shell command on the host, judged by its exit code AND its output.

``ok_codes``, ``success_regex`` and ``failure_regex`` are all checked (Bitrix's backup.php exits 0
when it fails); ``until`` reruns the command until its output says it is done; ``capture`` takes a
value from stdout for later steps (a secret capture is added to the redactor before anything is
recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Self

from pydantic import Field, model_validator

from controller.configkit import Bool, ConfigModel, Invalid
from controller.workflows.executor import Command, CommandResult
from controller.workflows.steps.base import Capture, Step, StepContext, StepKind, StepOutcome, timeout_of
from controller.workflows.steps.fields import AttemptsOrVar, Codes, CommandTemplate, Delay, Regex
from controller.workflows.template import Value, render_shell, secret_env


class Until(ConfigModel):
    """Repeat the command until its output matches ``regex`` / stops matching ``not_regex``.

    ``attempts`` is a number or the name of an int variable (``"{{ update_attempts }}"``); the loader
    refuses a name that is not one."""

    attempts: AttemptsOrVar
    delay: Delay = 0.0
    regex: Regex | None = None
    not_regex: Regex | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> Self:
        if self.regex is None and self.not_regex is None:
            raise Invalid("not_regex", "regex or not_regex (when to stop repeating)", None)
        return self

    @property
    def attempts_var(self) -> str | None:
        return self.attempts if isinstance(self.attempts, str) else None

    def count(self, values: Mapping[str, Value]) -> int:
        """How many times to run: the number, or the value of the variable it names (0 when that
        value is no integer >= 1: the step then fails without running)."""
        if isinstance(self.attempts, int):
            return self.attempts
        value = values[self.attempts]
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 0

    def done(self, output: str) -> bool:
        return ((self.regex is None or self.regex.search(output) is not None)
                and (self.not_regex is None or self.not_regex.search(output) is None))


class RunAction(StepKind):
    """``run: {command, ok_codes, success_regex, failure_regex, until, capture, captures}`` or
    ``run: "command"``."""

    kind: ClassVar[str] = "run"
    shorthand: ClassVar[str | None] = "command"
    templates: ClassVar[tuple[str, ...]] = ("command",)

    command: CommandTemplate
    ok_codes: Codes = (0,)
    success_regex: Regex | None = None
    failure_regex: Regex | None = None
    until: Until | None = None
    capture: Capture | None = None
    #: The command hands a secret to a 1C tool that takes its password only in its argv
    #: (``/P``, ``--infobase-pwd=``; template.ARGV_PASSWORD_OPTIONS): visible in the host's process
    #: table while it runs. Accepted only there, and only when the step says so.
    password_in_argv: Bool = False
    captures_: tuple[Capture, ...] = Field((), alias="captures")  # several values of the same output

    def captures(self) -> tuple[Capture, ...]:
        return ((self.capture,) if self.capture else ()) + self.captures_

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        text = render_shell(self.command, ctx.values, ctx.secrets)
        env = secret_env(self.command, ctx.values, ctx.secrets)
        timeout = timeout_of(step, ctx.values)
        attempts = self.until.count(ctx.values) if self.until else 1
        if attempts < 1:
            assert self.until is not None
            return StepOutcome(False, None, message=f"until.attempts: {{{{ {self.until.attempts} }}}} is "
                                                    f"{ctx.values[str(self.until.attempts)]!r}, expected an "
                                                    "integer >= 1")
        result: CommandResult | None = None
        total = 0.0
        problem: str | None = None
        for attempt in range(1, attempts + 1):
            result = ctx.executor.run(Command(text, ctx.redact(text), env), timeout)
            total += result.duration
            problem = self.judge(result)
            if problem or self.until is None or self.until.done(_output(result)):
                break
            problem = f"still not done after {attempt} attempt(s)"
            if attempt < attempts:
                ctx.sleep(self.until.delay)
        assert result is not None
        captured: dict[str, str] = {}
        for capture in self.captures() if problem is None else ():
            match = capture.regex.search(result.stdout_tail)
            if match is None:
                problem = f"capture {capture.name}: {capture.regex.pattern!r} not found in output"
                captured.clear()
                break
            captured[capture.name] = match.group(1)
            if capture.secret:
                ctx.redact.add(match.group(1))
        return StepOutcome(problem is None, ctx.redact(result.command_redacted), result.exit_code, total,
                           ctx.redact(result.stdout_tail), ctx.redact(result.stderr_tail), problem or "",
                           captured)

    def judge(self, result: CommandResult) -> str | None:
        """Why the result is a failure, or None."""
        if result.timed_out:
            return f"timed out after {result.duration:.0f} s (killed on the host)"
        if result.exit_code not in self.ok_codes:
            return f"exit code {result.exit_code} not in {list(self.ok_codes)}"
        text = _output(result)
        if self.failure_regex and (m := self.failure_regex.search(text)):
            return f"output matches failure pattern: {m.group(0)[:200]!r}"
        if self.success_regex and not self.success_regex.search(text):
            return f"output lacks the success pattern {self.success_regex.pattern!r}"
        return None


def _output(result: CommandResult) -> str:
    return result.stdout_tail + "\n" + result.stderr_tail
