"""``bitrix_site_checker``: did the vendor's site checker (Settings → Tools → Site checker) find
errors on its last run? ``b_option`` main/``site_checker_success`` = ``N`` → WARNING; ``Y`` → OK;
no such option (never run) → OK, saying so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal, PortalUnreadable, cell, unreadable
from agent.configtypes import Duration
from agent.report import Status

QUERY = "SELECT VALUE FROM b_option WHERE MODULE_ID='main' AND NAME='site_checker_success'"

METRICS = {
    "boxkeeper_bitrix_site_checker_ok":
        "1 when the Bitrix site checker's last run passed, 0 when it found errors.",
}


class SiteCheckerSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_site_checker"] = "bitrix_site_checker"

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(3600.0)


@dataclass(frozen=True)
class SiteCheckerCheck(FromSpec):
    spec: SiteCheckerSpec
    portal: Portal

    def run(self, timeout: float) -> CheckResult:
        portal = self.portal
        try:
            (result,) = portal.query((QUERY,), timeout)
        except PortalUnreadable as exc:
            return unreadable("the site checker's result (b_option)", exc)
        value = cell(result)
        text = (value.decode() if isinstance(value, bytes) else str(value or "")).strip().upper()
        if not result.rows:
            return CheckResult(Status.OK, f"the Bitrix site checker has not been run on site {portal.site}")
        if text == "N":
            return CheckResult(Status.WARNING,
                               f"the Bitrix site checker found errors on site {portal.site} at its last run "
                               f"(main/site_checker_success = N): see Settings → Tools → Site checker",
                               samples=(portal.sample("boxkeeper_bitrix_site_checker_ok", 0),))
        if text == "Y":
            return CheckResult(Status.OK,
                               f"the Bitrix site checker passed on site {portal.site} at its last run",
                               samples=(portal.sample("boxkeeper_bitrix_site_checker_ok", 1),))
        return CheckResult(Status.OK, f"the Bitrix site checker's result on site {portal.site} is neither "
                                      f"Y nor N (main/site_checker_success): nothing to judge")


def build(spec: SiteCheckerSpec, resources: Resources) -> SiteCheckerCheck:
    return SiteCheckerCheck(spec, Portal.of(spec))
