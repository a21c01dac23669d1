"""The check contract: a spec, a small object with a ``name`` and one method that returns a typed
result, and the plug-in record that ties the two together.

A check does its I/O inside ``run`` and must respect ``timeout`` itself where it can (sockets,
subprocesses). The scheduler enforces the timeout as well: a check still running after it is
reported UNKNOWN ("timed out after 10s", or what the check's optional
``timeout_summary(timeout)`` says) and the rest of the agent goes on.

A check type (one module each) declares its options as a frozen msgspec Struct subclassing
:class:`CheckSpec` (the keys every check has), with their defaults and, in ``__post_init__``, the
rules between keys (raising :class:`~agent.errors.SpecError` naming the key); its check object
takes that spec (``HttpCheck(spec)``) and reads the options from it. The module's
:class:`CheckType` (spec + build function) is one line of :mod:`agent.checks.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Optional, Protocol, TypeVar

import msgspec

from agent.configtypes import Attempts, Duration, Name
from agent.report import PerfValue, Sample, Status

if TYPE_CHECKING:
    from pathlib import Path

    from agent.proctable import ProcessTable

#: A check's interval when the config gives none, neither for the check nor at the top level.
DEFAULT_INTERVAL = Duration(15.0)


class CheckSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The keys every check has. ``interval`` defaults to the config's top-level ``interval`` (the
    loader passes it in; :data:`DEFAULT_INTERVAL` for a spec built in code), ``retry_interval`` to
    ``min(5s, interval)``."""

    name: Name
    type: str
    interval: Duration = DEFAULT_INTERVAL
    timeout: Duration = Duration(10.0)
    retries: Attempts = Attempts(1)
    retry_interval: Optional[Duration] = None  # None: min(5s, interval), set by __post_init__

    def __post_init__(self) -> None:
        if self.retry_interval is None:
            msgspec.structs.force_setattr(self, "retry_interval", Duration(min(5.0, self.interval)))

    @property
    def options(self) -> dict[str, Any]:
        """The keys of the check's type (those after the common ones) and their values."""
        return {f: getattr(self, f) for f in self.__struct_fields__ if f not in _COMMON_KEYS}


_COMMON_KEYS = frozenset(CheckSpec.__struct_fields__)


SpecT = TypeVar("SpecT", bound=CheckSpec)


@dataclass(frozen=True)
class Resources:
    """What the checks of one agent share, handed to every type's build function.

    ``processes``: one process table for all process checks (one ``/proc`` scan per round);
    None: each process check reads psutil itself.
    ``host``: the agent's host name (the config's ``host``), for summaries that name the box.
    ``state_dir``: where checks keep what must outlive a restart (a log check's offset), one small
    file per check; None: in memory only. ``save_state``: False for a run that must not move
    that state on (``boxkeeper-agent check`` reads it but writes nothing, so it never takes the
    running agent's new log lines).
    """

    processes: Optional[ProcessTable] = None
    host: str = "localhost"
    state_dir: Optional[Path] = None
    save_state: bool = True


@dataclass(frozen=True)
class CheckType(Generic[SpecT]):
    """A check type: its spec (whose ``type`` default is the type's name in the config), the
    function that builds its check object from a validated spec, and the Prometheus series its
    results carry (``CheckResult.samples``: name → HELP text, for /metrics)."""

    spec: type[SpecT]
    build: Callable[[SpecT, Resources], Check]
    metrics: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        for spec_field in msgspec.structs.fields(self.spec):
            if spec_field.name == "type" and isinstance(spec_field.default, str):
                return spec_field.default
        raise TypeError(f"{self.spec.__name__} has no default for type")


class FromSpec:
    """``name`` and ``type`` of a check object that keeps its spec as ``spec``."""

    spec: Any

    @property
    def name(self) -> str:
        return str(self.spec.name)

    @property
    def type(self) -> str:
        return str(self.spec.type)


@dataclass(frozen=True)
class CheckResult:
    """One run's outcome. ``samples``: the run's numbers as Prometheus series (names in base units
    by Prometheus conventions, bounded labels such as ``site``), exposed on /metrics and carried
    in reports until the check's next result replaces them (a result without samples — a timeout,
    a crash — removes them: a number that could not be read is absent, not stale)."""

    status: Status
    summary: str
    perfdata: tuple[PerfValue, ...] = ()
    details: str = ""  # long output (Nagios: lines after the first)
    samples: tuple[Sample, ...] = ()


class Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    def run(self, timeout: float) -> CheckResult: ...


def seconds_text(seconds: float) -> str:
    """``10`` → ``"10s"``, ``1.5`` → ``"1.5s"``: how timeouts read in summaries."""
    return f"{seconds:g}s"


def timeout_text(check: object, timeout: float) -> str:
    """How a run of ``check`` that did not finish within ``timeout`` is summarised."""
    summary = getattr(check, "timeout_summary", None)
    if callable(summary):
        return str(summary(timeout))
    return f"timed out after {seconds_text(timeout)}"


def timed_out(timeout: float) -> CheckResult:
    """The result of a check that did not finish within its timeout."""
    return CheckResult(Status.UNKNOWN, f"timed out after {seconds_text(timeout)}")
