"""A loaded playbook: frozen values. The format is documented in playbooks/README.md.

A playbook is data: variables (typed, with defaults, overridable with ``--var k=v``) and the steps of
each phase. The engine (engine.py) decides the order of phases; loader.py reads and validates YAML
into these values; a step's options are the model of its kind (steps/).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from controller.workflows.steps.base import Capture, Step
from controller.workflows.template import Value

BUILTINS = ("run_id", "host")
#: values only ``finally`` steps have: ``outcome`` is the run's final state (SUCCEEDED, FAILED, ...)
FINALLY_BUILTINS = ("outcome",)


class Phase(enum.StrEnum):
    PREFLIGHT = "preflight"
    BACKUP = "backup"
    BACKUP_VERIFY = "backup_verify"
    UPDATE = "update"
    VERIFY = "verify"
    ROLLBACK = "rollback"
    FINALLY = "finally"


#: phases a playbook must give at least one step
REQUIRED_PHASES = (Phase.UPDATE, Phase.VERIFY, Phase.ROLLBACK)


class VarType(enum.StrEnum):
    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    PATH = "path"
    ARGV = "argv"


@dataclass(frozen=True)
class Variable:
    name: str
    type: VarType
    default: Value | None  # None = required
    secret: bool = False
    description: str = ""


@dataclass(frozen=True)
class FailureIncident:
    """The incident a FAILED or ROLLED_BACK run opens instead of "update not started" / "release
    rolled back": for playbooks that change nothing on the live site (a restore drill), where a
    failure means something else. ``summary`` is a plain template (``{{ host }}`` …); the engine
    appends where the run failed and the line of the failed step's output that says why: the first
    match of ``detail_regex``, else the last line."""

    cause: str
    summary: str
    severity: str = "critical"
    detail_regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ReleaseKey:
    """One way to name the release a run installs (``release:`` in a playbook, first non-empty wins).

    ``key`` is a plain template over variables and captured values, rendered once the ``after``
    phase is done (preflight: before anything changes; update: only once the box is updated);
    its words are sorted, so ``b=2 a=1`` and ``a=1 b=2`` are one release. A key that renders
    empty, or to one of ``ignore`` (e.g. ``none`` for an empty package plan), names no release."""

    after: Phase
    key: str
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class RollbackLater:
    """``rollback_later: {check: STEP}``: the playbook's rollback phase may restore a succeeded run's
    backup later (``boxkeeper runs rollback ID``); ``check`` is a read-only step that succeeds only
    while that run's backup is still kept on the box (``{{ run_id }}`` is the earlier run's id)."""

    check: Step


@dataclass(frozen=True)
class Playbook:
    name: str
    source: str
    description: str
    applies_to: tuple[str, ...]
    lock_file: str
    variables: tuple[Variable, ...]
    phases: Mapping[Phase, tuple[Step, ...]]
    backup_location: str = ""  # template (plain), shown in incidents
    rollback_notice: str = ""  # text added to the incident of a rolled-back run
    failure_incident: FailureIncident | None = None  # None: the release incidents of outcomes.py
    release: tuple[ReleaseKey, ...] = ()  # empty: runs of this playbook are never held
    rollback_later: RollbackLater | None = None  # None: `runs rollback` is refused for its runs

    def steps(self, phase: Phase) -> tuple[Step, ...]:
        return self.phases.get(phase, ())

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def captures(self) -> dict[str, Capture]:
        return {c.name: c for steps in self.phases.values() for step in steps for c in step.action.captures()}

    def secret_names(self) -> frozenset[str]:
        """Placeholder names whose values are secret: secret variables and secret captures."""
        return frozenset({v.name for v in self.variables if v.secret}
                         | {f"captured.{c.name}" for c in self.captures().values() if c.secret})
