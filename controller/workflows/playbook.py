"""Playbook schema: frozen dataclasses. The format is documented in playbooks/README.md.

A playbook is data: variables (typed, with defaults, overridable with ``--var k=v``) and the steps of
each phase. The engine (engine.py) decides the order of phases; loader.py reads and validates YAML
into these values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.workflows.template import Value

BUILTINS = ("run_id", "host")


class Phase(enum.StrEnum):
    PREFLIGHT = "preflight"
    BACKUP = "backup"
    BACKUP_VERIFY = "backup_verify"
    UPDATE = "update"
    VERIFY = "verify"
    ROLLBACK = "rollback"
    FINALLY = "finally"


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
class Capture:
    name: str
    regex: re.Pattern[str]
    secret: bool = False


@dataclass(frozen=True)
class Until:
    """Repeat a command until its output matches ``regex`` / stops matching ``not_regex``."""

    attempts: int
    delay: float
    regex: re.Pattern[str] | None = None
    not_regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Retry:
    attempts: int = 1
    delay: float = 0.0


@dataclass(frozen=True)
class RunAction:
    command: str
    ok_codes: tuple[int, ...] = (0,)
    success_regex: re.Pattern[str] | None = None
    failure_regex: re.Pattern[str] | None = None
    until: Until | None = None
    capture: Capture | None = None


@dataclass(frozen=True)
class PutAction:
    src: str  # local (controller) path, relative to the playbook's directory unless absolute
    dest: str


@dataclass(frozen=True)
class GetAction:
    src: str
    dest: str  # local path


@dataclass(frozen=True)
class HttpAction:
    url: str
    status: tuple[int, ...] = (200,)
    body_regex: re.Pattern[str] | None = None
    body_not_regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class TestinfraAction:
    module: Path


@dataclass(frozen=True)
class WaitHealthyAction:
    soak: float
    poll: float = 5.0


Action = RunAction | PutAction | GetAction | HttpAction | TestinfraAction | WaitHealthyAction
KINDS = ("run", "put", "get", "http", "testinfra", "wait_healthy")


@dataclass(frozen=True)
class Step:
    name: str
    action: Action
    timeout: float
    retry: Retry = Retry()
    after: frozenset[str] = frozenset({"update", "rollback"})  # verify steps: when they apply
    timeout_var: str | None = None  # ``timeout: "{{ var }}"``: seconds from an int/float variable


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

    def steps(self, phase: Phase) -> tuple[Step, ...]:
        return self.phases.get(phase, ())

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def captures(self) -> dict[str, Capture]:
        found: dict[str, Capture] = {}
        for steps in self.phases.values():
            for step in steps:
                if isinstance(step.action, RunAction) and step.action.capture:
                    found[step.action.capture.name] = step.action.capture
        return found
