"""What every step shares, and the contract of a step kind.

A step kind is one module holding one :class:`StepKind` subclass, plus one line in registry.py:

* ``kind``: its name: the YAML key that picks it (``run: ...``) and the ``kind`` column of a run's
  timeline (stored runs use it: never rename one);
* its options: the model's fields (frozen, unknown keys refused, errors naming
  ``phases.update[0].<kind>.<option>``), and ``shorthand``: the option a plain string sets
  (``run: "cmd"`` is ``run: {command: "cmd"}``);
* ``templates``: the options that are ``{{ }}`` templates (the loader checks their placeholders);
* ``run(step, ctx) -> StepOutcome``: one attempt. It decides pass/fail from everything it saw, never
  from an exit code alone; executor errors (host unreachable) propagate to the engine;
* optionally ``default_timeout()``, ``value_problem(values)`` (an option given as ``"{{ var }}"``
  whose value does not fit, checked when a run starts), ``resolve(base)`` (what depends on the
  playbook's directory ``base``: relative paths, files that must exist; a problem is raised as
  ``Invalid(option, expected, got)``) and ``captures()`` (what it captures as ``captured.<name>``).

The keys every step has (``name``, ``timeout``, ``retry``, ``after``) are :class:`StepOptions`.
:func:`run_step` runs a step with its retries and redacts every text of the outcome, so a kind
cannot leak a secret into the timeline by forgetting to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import httpx
from pydantic import model_validator

from controller.configkit import Bool, ConfigModel, Invalid, Text
from controller.redact import Redactor
from controller.workflows.executor import Executor
from controller.workflows.steps.fields import After, Attempts, Delay, Identifier, Regex, StepTimeout
from controller.workflows.template import Value

DEFAULT_TIMEOUT = 60.0
BOTH = frozenset({"update", "rollback"})


@dataclass(frozen=True)
class HealthView:
    """What the controller knows of a host's own checks: last report time and hard CRITICAL checks."""

    last_report_at: float | None
    hard_critical: tuple[str, ...] = ()


class HealthSource(Protocol):
    def latest(self, host: str) -> HealthView: ...


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
    #: names of ``values`` that are secret: commands get them through the environment (template.py)
    secrets: frozenset[str] = frozenset()


class Capture(ConfigModel):
    """``capture: {name, regex, secret}``: group 1 of the first match in stdout → ``captured.<name>``."""

    name: Identifier
    regex: Regex
    secret: Bool = False

    @model_validator(mode="after")
    def _one_group(self) -> Self:
        if self.regex.groups < 1:
            raise Invalid("regex", "a regular expression with one capturing group", self.regex.pattern)
        return self


class StepKind(ConfigModel):
    """The options of one step of a kind, and how a step of that kind runs (see the module doc)."""

    kind: ClassVar[str]
    shorthand: ClassVar[str | None] = None
    templates: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str) and cls.shorthand is not None:
            return {cls.shorthand: data}
        return data

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        raise NotImplementedError(f"step kind {self.kind!r} has no run()")

    def default_timeout(self) -> float:
        return DEFAULT_TIMEOUT

    def resolve(self, base: Path) -> Self:
        """These options as they apply to a playbook in the directory ``base``."""
        return self

    def captures(self) -> tuple[Capture, ...]:
        return ()

    def value_problem(self, values: Mapping[str, Value]) -> Invalid | None:
        """What is wrong with an option set by a variable (``from: "{{ probe_from }}"``) for these
        values, checked when a run starts, before anything runs; None: nothing."""
        return None


class Retry(ConfigModel):
    """``retry: {attempts, delay}``: repeat the whole step until it passes."""

    attempts: Attempts = 1
    delay: Delay = 0.0


NO_RETRY = Retry()


class StepOptions(ConfigModel):
    """The keys every step has; registry.py adds one optional key per kind (exactly one is given)."""

    name: Text
    timeout: StepTimeout | None = None  # None: the kind's default
    retry: Retry = NO_RETRY
    after: After | None = None

    @classmethod
    def kind_keys(cls) -> tuple[str, ...]:
        return tuple(k for k in cls.model_fields if k not in StepOptions.model_fields)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        keys = self.kind_keys()
        given = [k for k in keys if getattr(self, k) is not None]
        if len(given) != 1:
            raise Invalid("", f"exactly one of the step kinds {', '.join(keys)}", given)
        return self

    @property
    def action(self) -> StepKind:
        action: StepKind = next(getattr(self, k) for k in self.kind_keys() if getattr(self, k) is not None)
        return action


@dataclass(frozen=True)
class Step:
    """One step of a loaded playbook (the engine builds a few of its own: the lock file steps)."""

    name: str
    action: StepKind
    timeout: float
    retry: Retry = NO_RETRY
    after: frozenset[str] = BOTH  # verify steps: after which phase they apply
    timeout_var: str | None = None  # ``timeout: "{{ var }}"``: seconds from an int/float variable

    @property
    def kind(self) -> str:
        return self.action.kind


def timeout_of(step: Step, values: Mapping[str, Value]) -> float:
    """The step's timeout: its number, or the value of the variable ``timeout: "{{ var }}"`` names."""
    if step.timeout_var is None:
        return step.timeout
    value = values.get(step.timeout_var)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else step.timeout


def run_step(step: Step, ctx: StepContext) -> StepOutcome:
    """Run one step (with its ``retry``). Executor errors (host unreachable) propagate to the engine."""
    outcome = StepOutcome(False, None)
    for attempt in range(1, step.retry.attempts + 1):
        outcome = redacted(step.action.run(step, ctx), ctx.redact)
        if outcome.ok:
            return outcome
        if attempt < step.retry.attempts:
            ctx.sleep(step.retry.delay)
    return outcome


def redacted(outcome: StepOutcome, redact: Redactor) -> StepOutcome:
    """Every text of an outcome with the known secrets masked (``captured`` stays raw: the engine
    needs the values; a secret capture is added to the redactor by the step that captured it)."""
    command = None if outcome.command is None else redact(outcome.command)
    return replace(outcome, command=command, stdout=redact(outcome.stdout), stderr=redact(outcome.stderr),
                   message=redact(outcome.message))
