"""``tcp`` check: can a TCP connection to ``address`` be opened within the timeout?"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources, timed_out
from agent.configtypes import Address
from agent.report import PerfValue, Status


class TcpSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["tcp"] = "tcp"
    address: Address


@dataclass(frozen=True)
class TcpCheck(FromSpec):
    spec: TcpSpec
    clock: Callable[[], float] = time.monotonic

    @property
    def address(self) -> str:
        return str(self.spec.address)

    def run(self, timeout: float) -> CheckResult:
        started = self.clock()
        host, port = self.spec.address
        try:
            with socket.create_connection((host, port), timeout=timeout):
                elapsed = self.clock() - started
        except TimeoutError:
            # an unreachable port is a problem of the service, not of the check (as check_tcp)
            return CheckResult(Status.CRITICAL, f"connect to {self.address} {timed_out(timeout).summary}")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return CheckResult(Status.CRITICAL, f"cannot connect to {self.address}: {reason}")
        return CheckResult(
            Status.OK,
            f"connected to {self.address} in {elapsed:.3f}s",
            (PerfValue("time", round(elapsed, 6), "s", min=0.0, max=timeout),),
        )


def build(spec: TcpSpec, resources: Resources) -> TcpCheck:
    return TcpCheck(spec)
