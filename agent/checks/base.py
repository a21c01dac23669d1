"""The check contract: a small object with a ``name`` and one method that returns a typed result.

A check does its I/O inside ``run`` and must respect ``timeout`` itself where it can (sockets,
subprocesses). The scheduler enforces the timeout as well: a check still running after it is
reported UNKNOWN ("timed out after 10s", or what the check's optional
``timeout_summary(timeout)`` says) and the rest of the agent goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.report import PerfValue, Status


@dataclass(frozen=True)
class CheckResult:
    status: Status
    summary: str
    perfdata: tuple[PerfValue, ...] = ()
    details: str = ""  # long output (Nagios: lines after the first)


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
