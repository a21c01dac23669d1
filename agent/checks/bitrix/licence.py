"""``bitrix_licence``: days until the portal's licence (support period) ends.

Reads ``b_option`` MODULE_ID='main' NAME='~support_finish_date' (``YYYY-MM-DD``; ``DD.MM.YYYY``
is read too) against the database's own date (``CURDATE()``, the portal's clock). Fewer than
``warning_days`` (30) left → WARNING, fewer than ``critical_days`` (7) → CRITICAL; after the end →
CRITICAL naming the date the vendor disables the portal: 15 days after the end (DOMAIN.md [doc]).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal, PortalUnreadable, cell, unreadable
from agent.configtypes import Count, Duration
from agent.errors import SpecError
from agent.report import PerfValue, Status

GRACE_DAYS = 15  # the portal is disabled this many days after the licence ends [doc]
QUERY = ("SELECT VALUE, CURDATE() FROM b_option WHERE MODULE_ID='main' AND NAME='~support_finish_date'")

REMAINING = "boxkeeper_bitrix_licence_remaining_seconds"
METRICS = {
    # in seconds, not days: Prometheus' base unit (promtool refuses a "days" name); whole days × 86400
    "boxkeeper_bitrix_licence_remaining_seconds":
        "Time until the Bitrix licence (support period) ends, in whole days as seconds; negative after.",
}


class LicenceSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_licence"] = "bitrix_licence"
    warning_days: Count = Count(30)
    critical_days: Count = Count(7)

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(3600.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critical_days > self.warning_days:
            raise SpecError("critical_days", "a number of days not above warning_days")


def parse_date(value: object) -> Optional[datetime.date]:
    text = value.decode() if isinstance(value, bytes) else str(value or "")
    m = (re.match(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})", text)
         or re.match(r"\s*(\d{1,2})\.(\d{1,2})\.(\d{4})", text))
    if not m:
        return None
    parts = [int(p) for p in m.groups()]
    year, month, day = parts if len(m.group(1)) == 4 else (parts[2], parts[1], parts[0])
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class LicenceCheck(FromSpec):
    spec: LicenceSpec
    portal: Portal

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        try:
            (result,) = portal.query((QUERY,), timeout)
        except PortalUnreadable as exc:
            return unreadable("the licence date", exc)
        if not result.rows:
            return CheckResult(Status.UNKNOWN, f"no licence end date in b_option (main/~support_finish_date) "
                                               f"of site {portal.site}")
        value, today = cell(result, 0, 0), cell(result, 0, 1)
        ends = parse_date(value)
        if ends is None or not isinstance(today, datetime.date):
            return CheckResult(Status.UNKNOWN, f"main/~support_finish_date of site {portal.site} is not a "
                                               f"date YYYY-MM-DD")
        left = (ends - today).days
        if left < 0:
            disabled = ends + datetime.timedelta(days=GRACE_DAYS)
            until = (disabled - today).days
            when = (f"the portal will be disabled on {disabled} (in {until} days)" if until > 0 else
                    f"the portal is disabled from {disabled}" if until == 0 else
                    f"the portal was to be disabled on {disabled}")
            summary = f"Bitrix licence of site {portal.site} expired on {ends} ({-left} days ago): {when}"
            status = Status.CRITICAL
        else:
            summary = f"Bitrix licence of site {portal.site} ends on {ends}: {left} days left"
            status = Status.OK
            if left < spec.critical_days:
                status = Status.CRITICAL
                summary += f" (fewer than {spec.critical_days})"
            elif left < spec.warning_days:
                status = Status.WARNING
                summary += f" (fewer than {spec.warning_days})"
        perf = (PerfValue("days_left", float(left), "", float(spec.warning_days), float(spec.critical_days)),)
        return CheckResult(status, summary, perf,
                           samples=(portal.sample(REMAINING, left * 86400),))


def build(spec: LicenceSpec, resources: Resources) -> LicenceCheck:
    return LicenceCheck(spec, Portal.of(spec))
