"""``bitrix_php_fatals``: new "PHP Fatal error" lines in the web server's error log, per run.

The log (``log``: bitrix-env's Apache ``/var/log/httpd/error_log`` by default; with PHP-FPM the
pool's ``php_admin_value[error_log]``) is read like the ``log`` check's file
(:class:`agent.logtail.LogTail`): offset kept in ``state_dir``, first start at the end, rotation
and truncation handled, at most 2 MiB per run. The count of new matching lines (``regex``,
default ``PHP Fatal error``) at or above ``warning`` (1) → WARNING, ``critical`` (10) →
CRITICAL [unverified thresholds: tune them to the portal's normal noise]. A log that does not
exist is UNKNOWN (a wrong path would otherwise never alert).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal
from agent.checks.log import judge, match_lines, state_file, trim
from agent.configtypes import Count, Duration, Regex, Text
from agent.errors import SpecError
from agent.logtail import LogError, LogTail
from agent.report import PerfValue, Status

METRICS = {
    "boxkeeper_bitrix_php_fatals_total":
        "PHP fatal error lines in the web server's error log since the agent started.",
}


class PhpFatalsSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_php_fatals"] = "bitrix_php_fatals"
    log: Text = Text("/var/log/httpd/error_log")
    regex: Regex = Regex("PHP Fatal error")
    warning: Count = Count(1)
    critical: Count = Count(10)

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(60.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warning > self.critical:
            raise SpecError("warning", "a count not above critical")


@dataclass
class PhpFatalsCheck(FromSpec):
    spec: PhpFatalsSpec
    portal: Portal
    tail: LogTail
    total: int = field(default=0)

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        try:
            read = self.tail.read()
        except LogError as exc:
            return CheckResult(Status.UNKNOWN, f"{exc} (set the web server's error log as the signal's log)")
        notes = f" ({'; '.join(read.notes)})" if read.notes else ""
        counter = (portal.sample("boxkeeper_bitrix_php_fatals_total", self.total, "counter"),)
        if read.started:
            return CheckResult(Status.OK, f"watching {spec.log} from its end: PHP fatal errors are counted "
                                          f"from now on{notes}", samples=counter)
        found = match_lines(read.lines, spec.regex, None)
        self.total += found.count
        status = judge(found.count, spec.warning, spec.critical)
        if found.count:
            summary = (f"{found.count} new PHP fatal error{'s' if found.count > 1 else ''} in {spec.log} "
                       f"(site {portal.site}); last: {trim(found.last[-1])}")
        else:
            summary = f"no new PHP fatal error in {spec.log}"
        perf = (PerfValue("fatals", float(found.count), "", float(spec.warning), float(spec.critical), 0.0),)
        counter = (portal.sample("boxkeeper_bitrix_php_fatals_total", self.total, "counter"),)
        return CheckResult(status, summary + notes, perf, "\n".join(trim(x) for x in found.last), counter)


def build(spec: PhpFatalsSpec, resources: Resources) -> PhpFatalsCheck:
    tail = LogTail(spec.log, state_file(resources, spec.name), save=resources.save_state)
    return PhpFatalsCheck(spec, Portal.of(spec), tail)
