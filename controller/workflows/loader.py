"""Reading a playbook: YAML → configkit models (the controller's one validation path) → the frozen
values of playbook.py; ``--var`` overrides, type-checked.

Every mistake is one ConfigError naming the file, the key path and what was expected, e.g.
``pb.yaml: phases.update[0].run.command: expected a safe command template: …``. The models check
the shape: keys (unknown ones refused), types, a step's one kind key (its options model comes from
steps/registry.py), ``after:`` only on verify steps, the required phases. What needs the whole
playbook is checked once the models are built: placeholders name only declared variables, run_id,
host or ``captured.<name>`` of a capture; ``timeout: "{{ var }}"`` names an int/float variable;
each kind resolves its paths against the playbook's directory (a testinfra module must exist).
A secret variable's value is shown as ``***`` in every error.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import Field, PlainValidator, create_model, field_validator, model_validator

from controller.configkit import Bool, ConfigModel, Expect, Invalid, Severity, Text, read_yaml, validate
from controller.errors import ConfigError
from controller.redact import MASK
from controller.workflows.playbook import (
    BUILTINS,
    FINALLY_BUILTINS,
    REQUIRED_PHASES,
    FailureIncident,
    Phase,
    Playbook,
    ReleaseKey,
    RollbackLater,
    Variable,
    VarType,
)
from controller.workflows.steps.base import BOTH, Step
from controller.workflows.steps.fields import IDENTIFIER, Regex, check_template
from controller.workflows.steps.registry import StepSpec
from controller.workflows.steps.run import RunAction
from controller.workflows.template import Value, placeholders, quoting_problem, secret_problem

DEFAULT_LOCK_FILE = "/var/lock/boxkeeper-update.lock"

_EXPECTED = {
    VarType.STR: "a string",
    VarType.PATH: "an absolute path",
    VarType.INT: "an integer",
    VarType.FLOAT: "a number",
    VarType.BOOL: "true or false",
    VarType.ARGV: "a list of words (or one string split like a shell would)",
}
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def convert(var: Variable, raw: object, source: str, path: str) -> Value:
    """Check (and from a ``--var`` string, convert) a value for a variable's type."""
    value = _converted(var.type, raw)
    if value is None:
        raise ConfigError(source, path, _EXPECTED[var.type], MASK if var.secret else raw)
    return value


def _converted(vtype: VarType, raw: object) -> Value | None:
    if isinstance(raw, bool):
        return raw if vtype is VarType.BOOL else None
    if vtype in (VarType.STR, VarType.PATH) and isinstance(raw, str | int | float):
        text = str(raw)
        return text if vtype is VarType.STR or text.startswith("/") else None
    if vtype is VarType.INT and isinstance(raw, int | str):
        try:
            return int(raw)
        except ValueError:
            return None
    if vtype is VarType.FLOAT and isinstance(raw, int | float | str):
        try:
            return float(raw)
        except ValueError:
            return None
    if vtype is VarType.BOOL and isinstance(raw, str) and raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    if vtype is VarType.ARGV:
        if isinstance(raw, str):
            try:
                return tuple(shlex.split(raw))
            except ValueError:
                return None
        if isinstance(raw, list | tuple) and all(isinstance(w, str) for w in raw):
            return tuple(raw)
    return None


# ---------------------------------------------------------------------------------------------
# The YAML shape


def _lock_file(value: object) -> str:
    text = check_template(value)
    if quoting_problem(text):
        raise Invalid("", "a path template without quotes", value)
    return text


VarTypeName = Annotated[VarType, Expect("one of " + ", ".join(t.value for t in VarType))]
Prose = Annotated[str, Expect("a text")]
BoxKinds = Annotated[tuple[str, ...], Expect("a list of box kinds")]
LockFile = Annotated[str, PlainValidator(_lock_file)]
PathTemplate = Annotated[str, Expect("a path template")]


def _cause(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", value):
        raise ValueError(value)
    return value


Cause = Annotated[str, Expect("an incident cause of lower-case letters, digits and _ "
                              "(e.g. backup_unrestorable)", _cause)]
SummaryTemplate = Annotated[str, Expect("a text template such as 'backups of {{ host }} cannot be restored'",
                                        check_template)]


class FailureIncidentSpec(ConfigModel):
    """``failure_incident: {cause, summary, severity}`` (see playbook.FailureIncident)."""

    cause: Cause
    summary: SummaryTemplate
    severity: Severity = "critical"
    detail_regex: Regex | None = None


ReleaseTemplate = Annotated[str, Expect("a text template such as '{{ captured.target_version }}'",
                                        check_template)]


def _release_after(value: object) -> Phase:
    if value not in ("preflight", "update"):
        raise ValueError(value)
    return Phase(str(value))


ReleaseAfter = Annotated[Phase, Expect("preflight or update (when the key is known)", _release_after)]


class ReleaseKeySpec(ConfigModel):
    """``release: [{after, key, ignore}]`` (see playbook.ReleaseKey)."""

    after: ReleaseAfter
    key: ReleaseTemplate
    ignore: Annotated[tuple[str, ...], Expect("a list of texts")] = ()


class RollbackLaterSpec(ConfigModel):
    """``rollback_later: {check: STEP}`` (see playbook.RollbackLater)."""

    check: StepSpec


class VariableSpec(ConfigModel):
    """``name: {type, default, secret, description}``; the default must fit the type."""

    type: VarTypeName = VarType.STR
    default: Any = None  # None: required (given with --var)
    secret: Bool = False
    description: Prose = ""

    @model_validator(mode="after")
    def _default_fits(self) -> Self:
        if self.default is None:
            return self
        value = _converted(self.type, self.default)
        if value is None:
            raise Invalid("default", _EXPECTED[self.type], MASK if self.secret else self.default)
        return self.model_copy(update={"default": value})


def _phases_model() -> Any:
    """The phases: one optional list of steps per phase (``finally`` is a Python keyword: no class)."""
    phases: dict[str, Any] = {phase.value: (tuple[StepSpec, ...], ()) for phase in Phase}
    return create_model("PhasesSpec", __base__=ConfigModel, __module__=__name__, **phases)


if TYPE_CHECKING:
    PhasesSpec = ConfigModel
else:
    PhasesSpec = _phases_model()


def _steps(phases: PhasesSpec, phase: Phase) -> tuple[StepSpec, ...]:
    steps: tuple[StepSpec, ...] = getattr(phases, phase.value)
    return steps


class PlaybookSpec(ConfigModel):
    name: Text
    description: Prose = ""
    applies_to: BoxKinds = ()
    lock_file: LockFile = DEFAULT_LOCK_FILE
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    phases: PhasesSpec
    backup_location: PathTemplate = ""
    rollback_notice: Prose = ""
    failure_incident: FailureIncidentSpec | None = None
    release: tuple[ReleaseKeySpec, ...] = ()
    rollback_later: RollbackLaterSpec | None = None

    @field_validator("variables", mode="before")
    @classmethod
    def _variable_names(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping):
            for name in raw:
                if not isinstance(name, str) or not IDENTIFIER.fullmatch(name) or name in (
                        *BUILTINS, *FINALLY_BUILTINS):
                    raise Invalid(str(name), "a variable name (letters, digits, _; not run_id, host or "
                                  "outcome)", name)
        return raw

    @field_validator("phases")
    @classmethod
    def _phase_rules(cls, phases: PhasesSpec) -> PhasesSpec:
        for phase in Phase:
            for i, step in enumerate(_steps(phases, phase)):
                if step.after is not None and phase is not Phase.VERIFY:
                    raise Invalid(f"{phase.value}[{i}].after", "update or rollback (only on verify steps)",
                                  step.after)
        for phase in REQUIRED_PHASES:
            if not _steps(phases, phase):
                raise Invalid(phase.value, "at least one step")
        return phases


# ---------------------------------------------------------------------------------------------
# Loading


def load_playbook(path: str | Path) -> Playbook:
    """Read and validate a playbook file."""
    path = Path(path)
    source = str(path)
    spec = validate(PlaybookSpec, read_yaml(path, "a readable playbook file"), source=source)
    variables = tuple(Variable(name, v.type, v.default, v.secret, v.description)
                      for name, v in spec.variables.items())
    phases = {phase: tuple(_step(step, f"phases.{phase.value}[{i}]", source, path.parent)
                           for i, step in enumerate(_steps(spec.phases, phase)))
              for phase in Phase}
    fi = spec.failure_incident
    playbook = Playbook(spec.name, source, spec.description, spec.applies_to, spec.lock_file, variables,
                        phases, spec.backup_location, spec.rollback_notice.strip(),
                        FailureIncident(fi.cause, fi.summary.strip(), fi.severity, fi.detail_regex)
                        if fi else None,
                        tuple(ReleaseKey(k.after, k.key.strip(), k.ignore) for k in spec.release),
                        RollbackLater(_step(spec.rollback_later.check, "rollback_later.check", source,
                                            path.parent)) if spec.rollback_later else None)
    _check_names(playbook)
    return playbook


def _step(spec: StepSpec, path: str, source: str, base: Path) -> Step:
    action = spec.action
    try:
        action = action.resolve(base)
    except Invalid as exc:
        raise ConfigError(source, f"{path}.{action.kind}.{exc.key}", exc.expected, exc.got) from None
    timeout_var = spec.timeout if isinstance(spec.timeout, str) else None
    timeout = spec.timeout if isinstance(spec.timeout, float) else action.default_timeout()
    after = frozenset({spec.after}) if spec.after else BOTH
    return Step(spec.name, action, timeout, spec.retry, after, timeout_var)


def _check_names(playbook: Playbook) -> None:
    """Placeholders only of what will have a value; ``timeout: "{{ var }}"`` only of a number."""
    source = playbook.source
    known = {v.name for v in playbook.variables} | set(BUILTINS) | set(FINALLY_BUILTINS)
    captured = set(playbook.captures())
    checks: list[tuple[str, str]] = [("lock_file", playbook.lock_file),
                                     ("backup_location", playbook.backup_location)]
    if playbook.failure_incident is not None:
        checks.append(("failure_incident.summary", playbook.failure_incident.summary))
    checks += [(f"release[{i}].key", k.key) for i, k in enumerate(playbook.release)]
    later = playbook.rollback_later.check if playbook.rollback_later else None
    if later is not None:
        checks += [(f"rollback_later.check.{later.kind}.{_option(later, key)}", getattr(later.action, key))
                   for key in later.action.templates if isinstance(getattr(later.action, key), str)]
    for phase, steps in playbook.phases.items():
        for i, step in enumerate(steps):
            path = f"phases.{phase.value}[{i}]"
            checks += [(f"{path}.{step.kind}.{_option(step, key)}", getattr(step.action, key))
                       for key in step.action.templates if isinstance(getattr(step.action, key), str)]
            if step.timeout_var is not None:
                var = playbook.variable(step.timeout_var)
                if var is None or var.type not in (VarType.INT, VarType.FLOAT):
                    raise ConfigError(source, f"{path}.timeout",
                                      "a number or {{ var }} of an int/float variable",
                                      f"{{{{ {step.timeout_var} }}}}")
            until = step.action.until if isinstance(step.action, RunAction) else None
            if until is not None and until.attempts_var is not None:
                var = playbook.variable(until.attempts_var)
                if var is None or var.type is not VarType.INT:
                    raise ConfigError(source, f"{path}.run.until.attempts",
                                      "an integer >= 1 or {{ var }} of an int variable",
                                      f"{{{{ {until.attempts_var} }}}}")
            if phase is not Phase.FINALLY:
                for key in step.action.templates:
                    value = getattr(step.action, key)  # a template, or a value given as such (from: host)
                    if isinstance(value, str) and "outcome" in placeholders(value):
                        raise ConfigError(source, f"{path}.{step.kind}.{_option(step, key)}",
                                          "{{ outcome }} only in finally steps (the run's outcome is "
                                          "known only then)", "{{ outcome }}")
    secrets = playbook.secret_names()
    shell = [("lock_file", playbook.lock_file, False)] + [
        (f"phases.{phase.value}[{i}].{step.kind}.command", step.action.command, step.action.password_in_argv)
        for phase, steps in playbook.phases.items() for i, step in enumerate(steps)
        if isinstance(step.action, RunAction)]
    if later is not None and isinstance(later.action, RunAction):
        shell.append((f"rollback_later.check.{later.kind}.command", later.action.command,
                      later.action.password_in_argv))
    for path, template, in_argv in shell:
        if problem := secret_problem(template, secrets, password_in_argv=in_argv):
            raise ConfigError(source, path, problem, template)
    for path, template in checks:
        for name in placeholders(template):
            ok = name[len("captured."):] in captured if name.startswith("captured.") else name in known
            if not ok:
                raise ConfigError(source, path,
                                  "only declared variables, run_id, host, or captured.<name> of a capture",
                                  f"{{{{ {name} }}}}")


def _option(step: Step, key: str) -> str:
    """An option's name as the YAML writes it (``from_`` is ``from``)."""
    field = type(step.action).model_fields.get(key)
    return field.alias or key if field is not None else key


def check_values(playbook: Playbook, values: Mapping[str, Value]) -> None:
    """Options set by a variable (``from: "{{ probe_from }}"``) must fit the variable's value: a
    ConfigError naming the step's option, before anything runs."""
    for phase, steps in playbook.phases.items():
        for i, step in enumerate(steps):
            if (problem := step.action.value_problem(values)) is not None:
                raise ConfigError(playbook.source, f"phases.{phase.value}[{i}].{step.kind}.{problem.key}",
                                  problem.expected, problem.got)


def resolve_variables(playbook: Playbook, overrides: Mapping[str, Value]) -> dict[str, Value]:
    """Defaults overridden by ``--var k=v`` (type-checked); every variable must end with a value."""
    values: dict[str, Value] = {}
    for key in overrides:
        if playbook.variable(key) is None:
            names = ", ".join(v.name for v in playbook.variables)
            raise ConfigError("--var", key, f"a variable of {playbook.name} ({names})", key)
    for var in playbook.variables:
        if var.name in overrides:
            values[var.name] = convert(var, overrides[var.name], "--var", var.name)
        elif var.default is not None:
            values[var.name] = var.default
        else:
            raise ConfigError("--var", var.name, f"a value (variable {var.name} has no default)")
    check_values(playbook, values)
    return values


def parse_var_args(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--var", item, "KEY=VALUE")
        out[key] = value
    return out


def find_playbook(name: str, search_dir: Path) -> Path:
    """A path to an existing file, or NAME / NAME.yaml in the playbooks directory."""
    for candidate in (Path(name), search_dir / name, search_dir / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(name, "(file)", f"a playbook file (looked in {search_dir})")
