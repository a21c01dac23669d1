"""``onec_cluster`` check: does the 1C cluster answer ``rac cluster list`` within the timeout?

- the cluster is listed → OK, with the time rac took;
- "Агент кластера недоступен" (the cluster agent is down), ras refusing, any other rac error, or no
  answer within ``timeout`` (10 s) → CRITICAL: nobody can work in the infobases;
- ``rac`` cannot be run (wrong path) → UNKNOWN.

rac is given 90 % of the timeout, so a hung cluster reads "no answer within 9s" (CRITICAL)
rather than the scheduler's UNKNOWN "timed out".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.onec.common import RacSpec, rac_of
from agent.checks.onec.rac import Rac, RacError
from agent.report import PerfValue, Sample, Status

METRICS = {
    "boxkeeper_onec_cluster_up":
        "1 when the 1C cluster answered rac cluster list within the timeout, else 0.",
    "boxkeeper_onec_rac_duration_seconds":
        "Time rac cluster list took on the onec_cluster check's last run.",
}


class OnecClusterSpec(RacSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["onec_cluster"] = "onec_cluster"


@dataclass(frozen=True)
class OnecClusterCheck(FromSpec):
    spec: OnecClusterSpec
    rac: Rac

    def run(self, timeout: float) -> CheckResult:
        labels = {"check": self.name}
        started = time.monotonic()
        try:
            cluster = self.rac.cluster(timeout * 0.9, self.spec.cluster)
        except RacError as exc:
            down = (Sample("boxkeeper_onec_cluster_up", 0.0, "gauge", labels),)
            if exc.kind == "failed" and str(exc).startswith("cannot run"):
                return CheckResult(Status.UNKNOWN, str(exc), samples=down)
            return CheckResult(Status.CRITICAL, f"the 1C cluster does not answer: {exc}", samples=down)
        seconds = time.monotonic() - started
        return CheckResult(
            Status.OK, f"1C cluster {cluster} answers rac ({self.rac.ras}) in {seconds:.2f} s",
            (PerfValue("time", round(seconds, 6), "s", min=0.0, max=float(timeout)),),
            samples=(Sample("boxkeeper_onec_cluster_up", 1.0, "gauge", labels),
                     Sample("boxkeeper_onec_rac_duration_seconds", round(seconds, 6), "gauge", labels)))


def build(spec: OnecClusterSpec, resources: Resources) -> OnecClusterCheck:
    return OnecClusterCheck(spec, rac_of(spec))
