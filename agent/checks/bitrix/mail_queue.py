"""``bitrix_mail_queue``: is the portal's mail being sent?

``b_event`` rows with ``SUCCESS_EXEC='N'`` are mails queued and not sent yet (cron or hits send
them). The oldest one's age (by the database's clock) over ``max_age`` (1 h) → CRITICAL, over
``warning_age`` → WARNING; the count at or above ``critical_count`` / ``warning_count`` (none by
default: a mailing to many users queues many at once) likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

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
from agent.configtypes import Count, Duration
from agent.errors import SpecError
from agent.report import PerfValue, Status

QUERY = "SELECT COUNT(*), TIMESTAMPDIFF(SECOND, MIN(DATE_INSERT), NOW()) FROM b_event WHERE SUCCESS_EXEC='N'"

METRICS = {
    "boxkeeper_bitrix_mail_queue_messages": "Mails queued in b_event and not sent yet (SUCCESS_EXEC='N').",
    "boxkeeper_bitrix_mail_queue_oldest_age_seconds":
        "Age of the oldest unsent mail in b_event; 0 when none.",
}


class MailQueueSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_mail_queue"] = "bitrix_mail_queue"
    max_age: Duration = Duration(3600.0)
    warning_age: Optional[Duration] = None
    warning_count: Optional[Count] = None
    critical_count: Optional[Count] = None

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warning_age is not None and self.warning_age > self.max_age:
            raise SpecError("warning_age", "a duration not above max_age")
        if self.warning_count is not None and self.critical_count is not None \
                and self.warning_count > self.critical_count:
            raise SpecError("warning_count", "a count not above critical_count")


@dataclass(frozen=True)
class MailQueueCheck(FromSpec):
    spec: MailQueueSpec
    portal: Portal
    host: str

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        try:
            (result,) = portal.query((QUERY,), timeout)
        except PortalUnreadable as exc:
            return unreadable("the mail queue (b_event)", exc)
        count = as_int(cell(result, 0, 0)) or 0
        oldest = max(as_int(cell(result, 0, 1)) or 0, 0) if count else 0
        where = f"on {self.host}" + ("" if portal.site == "default" else f" (site {portal.site})")
        status, problems = Status.OK, []
        if oldest > spec.max_age:
            status = Status.CRITICAL
            problems.append(f"oldest over {span(spec.max_age)}")
        elif spec.warning_age is not None and oldest > spec.warning_age:
            status = Status.WARNING
            problems.append(f"oldest over {span(spec.warning_age)}")
        if spec.critical_count is not None and count >= spec.critical_count:
            status = Status.CRITICAL
            problems.append(f"at least {spec.critical_count} queued")
        elif spec.warning_count is not None and count >= spec.warning_count and status is Status.OK:
            status = Status.WARNING
            problems.append(f"at least {spec.warning_count} queued")
        if not count:
            summary = f"Bitrix mail queue {where} is empty"
        elif status is Status.OK:
            summary = f"{count} mails queued {where}, the oldest {ago(oldest)} old"
        else:
            summary = (f"Bitrix mail is not being sent {where}: {count} queued, the oldest {ago(oldest)} old "
                       f"({', '.join(problems)})")
        perf = (
            PerfValue("queued", float(count), "", _opt(spec.warning_count), _opt(spec.critical_count), 0.0),
            PerfValue("oldest_age", float(oldest), "s", _opt(spec.warning_age), float(spec.max_age), 0.0),
        )
        samples = (portal.sample("boxkeeper_bitrix_mail_queue_messages", count),
                   portal.sample("boxkeeper_bitrix_mail_queue_oldest_age_seconds", oldest))
        return CheckResult(status, summary, perf, samples=samples)


def _opt(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


def build(spec: MailQueueSpec, resources: Resources) -> MailQueueCheck:
    return MailQueueCheck(spec, Portal.of(spec), resources.host)
