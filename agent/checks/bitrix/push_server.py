"""``bitrix_push_server``: is bitrix-env's push server (NodeJS, real-time chat and notifications)
running, and does its publish port answer?

- processes whose command line matches ``process_regex`` (``push-server``: bitrix-env runs
  ``node …/push-server/server.js --config /etc/push-server/push-server-{sub,pub}-NNNN.json``
  [unverified: the exact command line]), at least ``min_processes`` (1);
- a TCP connection to ``address`` (``127.0.0.1:8895``, the publish port on localhost, DOMAIN.md
  [doc]; the public ports are 8893/8894) within the timeout.

Either missing → CRITICAL. Portals that use the vendor's cloud push service instead have no
local push server: turn the signal off (``push_server: false``). The process table is the agent's
shared one (one /proc scan for every process check).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal
from agent.checks.process import ProcessCheck, ProcessSpec
from agent.configtypes import Address, Count, Name, Regex
from agent.report import PerfValue, Status

METRICS = {
    "boxkeeper_bitrix_push_server_processes": "Processes of the Bitrix push server.",
    "boxkeeper_bitrix_push_server_up": "1 when the push server's publish port accepts a TCP connection.",
}


class PushServerSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_push_server"] = "bitrix_push_server"
    process_regex: Regex = Regex("push-server")
    min_processes: Count = Count(1)
    address: Address = Address(("127.0.0.1", 8895))


@dataclass(frozen=True)
class PushServerCheck(FromSpec):
    spec: PushServerSpec
    portal: Portal
    processes: ProcessCheck

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        stats = self.processes.collect()
        host, port = spec.address
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered, reason = True, ""
        except OSError as exc:
            answered = False
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        problems = []
        if stats.count < spec.min_processes:
            problems.append(f"{stats.count} processes match {spec.process_regex!r} (want at least "
                            f"{spec.min_processes})")
        if not answered:
            problems.append(f"{spec.address} does not accept connections ({reason})")
        if problems:
            summary = f"Bitrix push server is down (site {portal.site}): " + "; ".join(problems)
            status = Status.CRITICAL
        else:
            summary = f"Bitrix push server runs: {stats.count} processes, {spec.address} answers"
            status = Status.OK
        perf = (PerfValue("processes", float(stats.count), "", None, float(spec.min_processes), 0.0),)
        samples = (portal.sample("boxkeeper_bitrix_push_server_processes", stats.count),
                   portal.sample("boxkeeper_bitrix_push_server_up", 1 if answered else 0))
        return CheckResult(status, summary, perf, samples=samples)


def build(spec: PushServerSpec, resources: Resources) -> PushServerCheck:
    process_spec = ProcessSpec(name=Name(f"{spec.name}.processes"), cmdline_regex=spec.process_regex)
    return PushServerCheck(spec, Portal.of(spec), ProcessCheck(process_spec, psutil=resources.processes))
