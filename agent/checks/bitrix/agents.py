"""``bitrix_agents``: do the portal's agents (its scheduled jobs, run by cron or on hits) run?

One query on ``b_agent`` (active agents only): the age of the newest ``LAST_EXEC`` ("lag") and
how many are *overdue* (``NEXT_EXEC`` more than ``max_lag`` in the past). Ages are computed by the
database (``NOW()``), so the agent's and the database's time zones do not matter.

- lag over ``max_lag`` (15 min), or no active agent has ever run while some are overdue →
  CRITICAL "Bitrix agents are not running on <host>: newest run 23 min ago, 3 overdue". This is
  what a commented cron line (``cron_events.php``) looks like even while crond itself runs;
- some agents overdue while others run → WARNING (stuck agents);
- no active agents → OK.

The 15 min default is a reasoned guess (DOMAIN.md: [unverified]; the vendor's site checker uses
one day): cron runs agents every minute on bitrix-env, and a busy portal runs them in batches,
so set ``max_lag`` to what the portal shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import (
    BitrixSpec,
    Portal,
    PortalUnreadable,
    ago,
    as_int,
    cell,
    span,
    unreadable,
)
from agent.configtypes import Duration
from agent.report import PerfValue, Sample, Status

QUERY = (
    "SELECT COUNT(*), TIMESTAMPDIFF(SECOND, MAX(LAST_EXEC), NOW()), "
    "SUM(NEXT_EXEC < NOW() - INTERVAL {lag} SECOND), TIMESTAMPDIFF(SECOND, MIN(NEXT_EXEC), NOW()) "
    "FROM b_agent WHERE ACTIVE='Y'"
)

METRICS = {
    "boxkeeper_bitrix_agents_lag_seconds": "Age of the newest LAST_EXEC of the portal's active agents.",
    "boxkeeper_bitrix_agents_overdue": "Active agents whose NEXT_EXEC is more than max_lag in the past.",
    "boxkeeper_bitrix_agents_active": "Active agents of the portal (b_agent ACTIVE='Y').",
}


class AgentsSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_agents"] = "bitrix_agents"
    max_lag: Duration = Duration(15 * 60.0)

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(60.0)


@dataclass(frozen=True)
class AgentsCheck(FromSpec):
    spec: AgentsSpec
    portal: Portal
    host: str

    def run(self, timeout: float) -> CheckResult:
        portal, max_lag = self.portal, float(self.spec.max_lag)
        try:
            (result,) = portal.query((QUERY.format(lag=int(max_lag)),), timeout)
        except PortalUnreadable as exc:
            return unreadable("the agents (b_agent)", exc)
        active = as_int(cell(result, 0, 0)) or 0
        lag = as_int(cell(result, 0, 1))
        overdue = as_int(cell(result, 0, 2)) or 0
        oldest_due = as_int(cell(result, 0, 3))
        where = f"on {self.host}" + ("" if portal.site == "default" else f" (site {portal.site})")
        samples: list[Sample] = [portal.sample("boxkeeper_bitrix_agents_active", active),
                                 portal.sample("boxkeeper_bitrix_agents_overdue", overdue)]
        perf = [PerfValue("overdue", float(overdue), "", min=0.0)]
        if lag is not None:
            lag = max(lag, 0)
            samples.append(portal.sample("boxkeeper_bitrix_agents_lag_seconds", lag))
            perf.insert(0, PerfValue("lag", float(lag), "s", None, max_lag, 0.0))
        if not active:
            return CheckResult(Status.OK, f"no active Bitrix agents {where}", tuple(perf),
                               samples=tuple(samples))
        newest = "never run" if lag is None else f"newest run {ago(lag)} ago"
        if (lag is not None and lag > max_lag) or (lag is None and overdue):
            status = Status.CRITICAL
            summary = f"Bitrix agents are not running {where}: {newest}, {overdue} overdue"
        elif overdue:
            status = Status.WARNING
            late = f", the oldest due {ago(oldest_due)} ago" if oldest_due is not None else ""
            summary = (f"{overdue} of {active} Bitrix agents are overdue by more than {span(max_lag)} {where}"
                       f"{late} ({newest})")
        else:
            status = Status.OK
            summary = f"Bitrix agents run {where}: {newest}, 0 overdue of {active}"
        return CheckResult(status, summary, tuple(perf), samples=tuple(samples))


def build(spec: AgentsSpec, resources: Resources) -> AgentsCheck:
    return AgentsCheck(spec, Portal.of(spec), resources.host)
