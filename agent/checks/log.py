"""``log`` check: how many new lines of a file match a regex since the last run?

Each run reads the lines the file gained since the previous run (:class:`agent.logtail.LogTail`:
offset kept in ``state_dir``, rotation and truncation handled, the first start positioned at the
end, at most ``max_read`` bytes per run) and counts those that match ``regex`` (``re.search``) and
not ``not_regex``. The count of this run is judged: at or above ``critical`` (default 1) →
CRITICAL, at or above ``warning`` → WARNING. The summary ends with the last matching line
(trimmed); the long output lists the last few.

Serves e.g. ``UPD_ERROR`` in ``bitrix/modules/updater.log``, ``PHP Fatal error`` in the web
server's error log, ``marked as crashed`` in the MySQL error log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.configtypes import Count, Regex, Size, Text
from agent.errors import SpecError
from agent.logtail import LogError, LogTail, TailRead
from agent.report import PerfValue, Sample, Status

MAX_LINE = 300  # characters of a matching line shown in a summary
DETAIL_LINES = 5

METRICS = {
    "boxkeeper_log_matches_total": "Lines that matched the log check's regex since the agent started.",
}


class LogSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["log"] = "log"
    path: Text
    regex: Regex
    not_regex: Optional[Regex] = None
    warning: Optional[Count] = None
    critical: Optional[Count] = Count(1)
    max_read: Size = Size(2 * 1024 * 1024)
    missing_ok: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warning is not None and self.critical is not None and self.warning > self.critical:
            raise SpecError("warning", "a count not above critical")
        if self.max_read < 1024:
            raise SpecError("max_read", "a size of at least 1KiB")


def trim(line: str, limit: int = MAX_LINE) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def judge(count: int, warning: Optional[int], critical: Optional[int]) -> Status:
    if critical is not None and critical > 0 and count >= critical:
        return Status.CRITICAL
    if warning is not None and warning > 0 and count >= warning:
        return Status.WARNING
    return Status.OK


@dataclass(frozen=True)
class Matches:
    count: int
    last: tuple[str, ...]  # the last DETAIL_LINES matching lines, oldest first


def match_lines(lines: tuple[str, ...], regex: str, not_regex: Optional[str]) -> Matches:
    search = re.compile(regex).search
    exclude = re.compile(not_regex).search if not_regex else None
    count = 0
    last: list[str] = []
    for line in lines:
        if search(line) and not (exclude and exclude(line)):
            count += 1
            last.append(line)
            if len(last) > DETAIL_LINES:
                del last[0]
    return Matches(count, tuple(last))


def state_file(resources: Resources, name: str) -> Optional[Path]:
    """Where the check ``name`` keeps its state (None: in memory only)."""
    return None if resources.state_dir is None else Path(resources.state_dir) / f"{name}.json"


def describe_read(read: TailRead, path: str) -> str:
    """The part of a summary that says what was read (and what was odd about it)."""
    notes = read.notes
    return f" ({'; '.join(notes)})" if notes else ""


@dataclass
class LogCheck(FromSpec):
    spec: LogSpec
    tail: LogTail
    total: int = field(default=0)

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        try:
            read = self.tail.read()
        except LogError as exc:
            return CheckResult(Status.UNKNOWN, str(exc))
        if read.missing:
            return CheckResult(Status.OK, f"{spec.path} does not exist (nothing logged yet)",
                               samples=self._samples())
        if read.started:
            return CheckResult(
                Status.OK,
                f"watching {spec.path} from its end ({read.size} bytes): lines matching "
                f"{spec.regex!r} are counted from now on{describe_read(read, spec.path)}",
                samples=self._samples(),
            )
        found = match_lines(read.lines, spec.regex, spec.not_regex)
        self.total += found.count
        status = judge(found.count, spec.warning, spec.critical)
        if found.count:
            noun = "line matches" if found.count == 1 else "lines match"
            summary = f"{found.count} new {noun} {spec.regex!r} in {spec.path}; last: {trim(found.last[-1])}"
        else:
            summary = f"no new line matches {spec.regex!r} in {spec.path} ({read.bytes_read} bytes read)"
        summary += describe_read(read, spec.path)
        perf = (
            PerfValue("matches", float(found.count), "",
                      None if spec.warning is None else float(spec.warning),
                      None if spec.critical is None else float(spec.critical), 0.0),
            PerfValue("bytes", float(read.bytes_read), "B", min=0.0),
        )
        details = "\n".join(trim(line) for line in found.last)
        return CheckResult(status, summary, perf, details, self._samples())

    def _samples(self) -> tuple[Sample, ...]:
        return (Sample("boxkeeper_log_matches_total", float(self.total), "counter", {"check": self.name}),)


def build(spec: LogSpec, resources: Resources) -> LogCheck:
    tail = LogTail(spec.path, state_file(resources, spec.name), save=resources.save_state,
                   max_read=spec.max_read, missing_ok=spec.missing_ok)
    return LogCheck(spec, tail)
