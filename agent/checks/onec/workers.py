"""``onec_workers`` check: the 1C cluster's worker processes (rphost), from ``rac process list``.

Per process (labelled by its port, 1560–1591: a bounded set):

- ``memory-excess-time`` (seconds the process has been over the cluster's memory limit) at or
  above ``memory_excess_warning`` (1 s: any) → WARNING, ``memory_excess_critical`` (unset) →
  CRITICAL;
- ``memory-size`` (rac reports KB) at or above ``memory_warning`` / ``memory_critical`` (unset:
  the cluster's own limit, seen through memory-excess-time, is the usual signal);
- ``available-perfomance`` [sic] below ``performance_warning`` (unset: what is low depends on the
  hardware [unverified]) → WARNING;
- no worker process listed → CRITICAL (no session can run); the cluster not answering → UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.onec.common import Deadline, RacSpec, cannot_ask, rac_of
from agent.checks.onec.rac import Rac, RacError
from agent.configtypes import Count, Duration, Size
from agent.errors import SpecError
from agent.report import PerfValue, Sample, Status, worst

METRICS = {
    "boxkeeper_onec_worker_processes": "Worker processes (rphost) the 1C cluster lists.",
    "boxkeeper_onec_worker_memory_bytes": "A 1C worker process's memory (rac process list memory-size).",
    "boxkeeper_onec_worker_memory_excess_seconds":
        "How long a 1C worker process has been over the cluster's memory limit (memory-excess-time).",
    "boxkeeper_onec_worker_available_performance":
        "A 1C worker process's available performance (rac process list available-perfomance).",
}


class OnecWorkersSpec(RacSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["onec_workers"] = "onec_workers"
    memory_excess_warning: Optional[Duration] = Duration(1.0)
    memory_excess_critical: Optional[Duration] = None
    memory_warning: Optional[Size] = None
    memory_critical: Optional[Size] = None
    performance_warning: Optional[Count] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for low, high in (("memory_excess_warning", "memory_excess_critical"),
                          ("memory_warning", "memory_critical")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise SpecError(low, f"a value not above {high}")


def _number(value: Optional[str]) -> Optional[float]:
    try:
        return float((value or "").strip())
    except ValueError:
        return None


def _mib(n: float) -> str:
    return f"{n / 1048576:.0f} MiB"


@dataclass(frozen=True)
class OnecWorkersCheck(FromSpec):
    spec: OnecWorkersSpec
    rac: Rac

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        deadline = Deadline(timeout * 0.9)
        try:
            cluster = self.rac.cluster(deadline.left(), spec.cluster)
            processes = self.rac.run(["process", f"--cluster={cluster}", "list"], deadline.left())
        except RacError as exc:
            return cannot_ask(exc)
        labels = {"check": self.name}
        samples = [Sample("boxkeeper_onec_worker_processes", float(len(processes)), "gauge", labels)]
        if not processes:
            return CheckResult(Status.CRITICAL, "the 1C cluster lists no worker process: no session can run",
                               samples=tuple(samples))
        status = Status.OK
        problems: list[str] = []
        biggest = 0.0
        for p in processes:
            port = p.get("port", "?")
            who = f"rphost :{port} (pid {p.get('pid', '?')})"
            memory_kb = _number(p.get("memory-size"))
            excess = _number(p.get("memory-excess-time"))
            perf = _number(p.get("available-perfomance", p.get("available-performance")))
            plabels = {**labels, "port": port}
            level = Status.OK
            if memory_kb is not None:
                memory = memory_kb * 1024
                biggest = max(biggest, memory)
                samples.append(Sample("boxkeeper_onec_worker_memory_bytes", memory, "gauge", plabels))
                for bound, at in ((spec.memory_critical, Status.CRITICAL),
                                  (spec.memory_warning, Status.WARNING)):
                    if bound is not None and memory >= bound:
                        problems.append(f"{who} uses {_mib(memory)} (at or above {_mib(bound)})")
                        level = worst([level, at])
                        break
            if excess is not None:
                samples.append(Sample("boxkeeper_onec_worker_memory_excess_seconds", excess, "gauge",
                                      plabels))
                for dbound, at in ((spec.memory_excess_critical, Status.CRITICAL),
                                   (spec.memory_excess_warning, Status.WARNING)):
                    if dbound is not None and excess >= dbound:
                        problems.append(f"{who} over the cluster's memory limit for {excess:.0f} s")
                        level = worst([level, at])
                        break
            if perf is not None:
                samples.append(Sample("boxkeeper_onec_worker_available_performance", perf, "gauge", plabels))
                if spec.performance_warning is not None and perf < spec.performance_warning:
                    problems.append(f"{who} available performance {perf:.0f} "
                                    f"(below {spec.performance_warning})")
                    level = worst([level, Status.WARNING])
            if level.severity > status.severity:
                status = level
        plural = "es" if len(processes) != 1 else ""
        summary = f"{len(processes)} worker process{plural}, largest {_mib(biggest)}"
        if problems:
            summary += ": " + "; ".join(problems)
        perfdata = (PerfValue("processes", float(len(processes)), "", min=0.0),
                    PerfValue("memory_max", biggest, "B",
                              None if spec.memory_warning is None else float(spec.memory_warning),
                              None if spec.memory_critical is None else float(spec.memory_critical), 0.0))
        return CheckResult(status, summary, perfdata, samples=tuple(samples))


def build(spec: OnecWorkersSpec, resources: Resources) -> OnecWorkersCheck:
    return OnecWorkersCheck(spec, rac_of(spec))
