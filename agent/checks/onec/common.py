"""What the rac-based 1C checks share: the keys ``rac`` (the binary: ``/opt/1cv8/x86_64/<version>/rac``),
``ras`` (where ras listens, ``localhost:1545``) and ``cluster`` (its id, when ras serves more than
one; else the first ``rac cluster list`` names), and how a failed rac call reads.

A signal check that cannot ask the cluster (agent down, ras down, rac missing) is UNKNOWN with the
reason: the ``onec_cluster`` check is the one that says the cluster is down.
"""

from __future__ import annotations

import time
from typing import Optional

from agent.checks.base import CheckResult, CheckSpec
from agent.checks.onec.rac import DEFAULT_RAS, Rac, RacError
from agent.configtypes import Text
from agent.report import Status


class RacSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    rac: Text
    ras: Text = Text(DEFAULT_RAS)
    cluster: Optional[Text] = None


def rac_of(spec: RacSpec) -> Rac:
    return Rac(str(spec.rac), str(spec.ras))


class Deadline:
    """What is left of one run's timeout, for the rac calls made one after the other."""

    def __init__(self, timeout: float) -> None:
        self.end = time.monotonic() + timeout

    def left(self) -> float:
        return max(0.1, self.end - time.monotonic())


def cannot_ask(exc: RacError) -> CheckResult:
    return CheckResult(Status.UNKNOWN, f"cannot ask the 1C cluster: {exc}")
