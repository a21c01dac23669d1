"""``bitrix_updates``: did the module updater log errors, or leave an update half done?

- New ``UPD_ERROR`` lines in ``<docroot>/bitrix/modules/updater.log`` (``YYYY-MM-DD HH:MM:SS -
  UPD_ERROR - text``), read like the ``log`` check (:class:`agent.logtail.LogTail`: offset kept in
  ``state_dir``, first start at the end, rotation and truncation handled): at or above
  ``critical`` (1) in one run → CRITICAL, with the last error line as the summary. The next run
  without new errors is OK again (the incident and its notification stay on the controller).
- Entries in ``<docroot>/bitrix/updates/`` older than ``leftover_age`` (1 h; hidden files aside)
  → WARNING: what an update that did not finish leaves behind. Whether the vendor's updater
  always empties that directory after a clean run is [unverified].
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal, ago
from agent.checks.log import judge, match_lines, state_file, trim
from agent.configtypes import Count, Duration
from agent.logtail import LogError, LogTail
from agent.report import PerfValue, Status

LOG = "bitrix/modules/updater.log"
UPDATES_DIR = "bitrix/updates"
REGEX = r" - UPD_ERROR - "  # "YYYY-MM-DD HH:MM:SS - UPD_ERROR - text"

METRICS = {
    "boxkeeper_bitrix_update_errors_total":
        "UPD_ERROR lines the Bitrix updater logged since the agent started.",
    "boxkeeper_bitrix_update_leftovers":
        "Entries older than leftover_age in bitrix/updates/ (an unfinished update).",
}


class UpdatesSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_updates"] = "bitrix_updates"
    critical: Count = Count(1)
    leftover_age: Duration = Duration(3600.0)

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(60.0)


def leftovers(directory: str, older_than: float, now: float) -> tuple[list[tuple[str, float]], Optional[str]]:
    """(name, age) of the entries of ``directory`` older than ``older_than`` seconds (hidden ones
    aside), and a problem reading it (None when it could be read or does not exist)."""
    found: list[tuple[str, float]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if age > older_than:
                    found.append((entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""), age))
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"cannot read {directory}: {exc.strerror or exc}"
    return sorted(found, key=lambda item: -item[1]), None


@dataclass
class UpdatesCheck(FromSpec):
    spec: UpdatesSpec
    portal: Portal
    tail: LogTail
    wall: Callable[[], float] = time.time
    total: int = field(default=0)

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        status, parts, notes = Status.OK, [], []
        count = 0
        try:
            read = self.tail.read()
        except LogError as exc:
            status = Status.UNKNOWN
            parts.append(str(exc))
        else:
            notes += read.notes
            if read.missing:
                parts.append(f"no {LOG} yet")
            elif read.started:
                parts.append(f"watching {LOG} from its end")
            else:
                found = match_lines(read.lines, REGEX, None)
                count = found.count
                self.total += count
                status = judge(count, None, spec.critical)
                if count:
                    parts.append(f"Bitrix updater logged {count} new UPD_ERROR on site {portal.site}: "
                                 f"{trim(found.last[-1])}")
                else:
                    parts.append("no new UPD_ERROR in updater.log")
        directory = os.path.join(portal.docroot, UPDATES_DIR)
        left, problem = leftovers(directory, float(spec.leftover_age), self.wall())
        if problem:
            notes.append(problem)
        if left:
            names = ", ".join(f"{name} ({ago(age)} old)" for name, age in left[:3])
            more = f" and {len(left) - 3} more" if len(left) > 3 else ""
            parts.append(f"{len(left)} leftovers of an unfinished update in {UPDATES_DIR}/: {names}{more}")
            if status is Status.OK:
                status = Status.WARNING
        summary = "; ".join(parts) + (f" ({'; '.join(notes)})" if notes else "")
        perf = (PerfValue("errors", float(count), "", None, float(spec.critical), 0.0),
                PerfValue("leftovers", float(len(left)), "", min=0.0))
        samples = (portal.sample("boxkeeper_bitrix_update_errors_total", self.total, "counter"),
                   portal.sample("boxkeeper_bitrix_update_leftovers", len(left)))
        return CheckResult(status, summary, perf, samples=samples)


def build(spec: UpdatesSpec, resources: Resources) -> UpdatesCheck:
    tail = LogTail(os.path.join(spec.docroot, LOG), state_file(resources, spec.name),
                   save=resources.save_state, missing_ok=True)
    return UpdatesCheck(spec, Portal.of(spec), tail)
