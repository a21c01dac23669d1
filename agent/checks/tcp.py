"""``tcp`` check: can a TCP connection to ``address`` be opened within the timeout?"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.checks.base import CheckResult, timed_out
from agent.config import CheckConfig
from agent.report import PerfValue, Status


@dataclass(frozen=True)
class TcpCheck:
    name: str
    host: str
    port: int
    type: str = "tcp"
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_config(cls, cfg: CheckConfig) -> TcpCheck:
        host, port = cfg.options["address"]
        return cls(cfg.name, host, port)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def run(self, timeout: float) -> CheckResult:
        started = self.clock()
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
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
