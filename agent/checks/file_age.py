"""``file_age`` check: is the newest file matching ``glob`` fresh and big enough (e.g. backups)?

Of the regular files matching ``glob`` (``**`` crosses directories), the newest by modification
time is judged: fewer than ``min_count`` files (none by default) → CRITICAL; older than
``max_age`` → CRITICAL; older than ``warning_age`` → WARNING; smaller than ``min_size`` →
CRITICAL. The summary names the file, its age and its size. The agent needs read and search
permission on the directories of the pattern; when it lacks them the check is UNKNOWN (it cannot
tell), not CRITICAL.
"""

from __future__ import annotations

import glob
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.configtypes import Count, Duration, Size, Text
from agent.report import PerfValue, Status

_MAGIC = set("*?[")


def base_directory(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: ``/a/b/*/c*.gz`` → ``/a/b``."""
    parts = pattern.split(os.sep)
    fixed: list[str] = []
    for part in parts[:-1]:
        if _MAGIC & set(part):
            break
        fixed.append(part)
    base = os.sep.join(fixed)
    return base or (os.sep if pattern.startswith(os.sep) else ".")


def age_text(seconds: float) -> str:
    """``11520`` → ``"3h 12m"``; ``-5`` → ``"0s"`` (clock skew: a file from the future is fresh)."""
    s = max(0, int(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class FileAgeSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["file_age"] = "file_age"
    glob: Text
    max_age: Duration
    warning_age: Optional[Duration] = None
    min_size: Size = Size(0)
    min_count: Count = Count(1)


@dataclass(frozen=True)
class FileAgeCheck(FromSpec):
    spec: FileAgeSpec
    wall: Callable[[], float] = time.time

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        pattern = spec.glob
        max_age = float(spec.max_age)
        warning_age = None if spec.warning_age is None else float(spec.warning_age)
        base = base_directory(pattern)
        if os.path.isdir(base) and not os.access(base, os.R_OK | os.X_OK):  # novm
            return CheckResult(Status.UNKNOWN, f"cannot read directory {base}: permission denied "
                                               f"(the agent's user needs read access)")
        files: list[tuple[str, os.stat_result]] = []
        for path in glob.glob(pattern, recursive=True):
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between glob and stat (rotation)
            if stat.S_ISREG(st.st_mode):
                files.append((path, st))
        count_perf = PerfValue("count", float(len(files)), "", min=0.0)
        if len(files) < spec.min_count:
            if not files:
                where = "" if os.path.isdir(base) else f" (directory {base} does not exist)"
                summary = f"no file matches {pattern}{where}"
            else:
                summary = f"only {len(files)} files match {pattern} (want at least {spec.min_count})"
            return CheckResult(Status.CRITICAL, summary, (count_perf,))
        if not files:  # min_count: 0 and nothing there
            return CheckResult(Status.OK, f"no file matches {pattern} (none required)", (count_perf,))
        path, st = max(files, key=lambda f: (f[1].st_mtime, f[0]))
        age = self.wall() - st.st_mtime
        status = Status.OK
        problems: list[str] = []
        if age > max_age:
            status = Status.CRITICAL
            problems.append(f"older than {age_text(max_age)}")
        elif warning_age is not None and age > warning_age:
            status = Status.WARNING
            problems.append(f"older than {age_text(warning_age)}")
        if st.st_size < spec.min_size:
            status = Status.CRITICAL
            problems.append(f"smaller than {size_text(spec.min_size)}")
        summary = f"newest {path} is {age_text(age)} old, {size_text(st.st_size)}"
        if problems:
            summary += ": " + ", ".join(problems)
        perf = (
            PerfValue("age", round(max(age, 0.0), 3), "s", warning_age, max_age, 0.0),
            PerfValue("size", float(st.st_size), "B", None, float(spec.min_size), 0.0),
            count_perf,
        )
        return CheckResult(status, summary, perf)


def build(spec: FileAgeSpec, resources: Resources) -> FileAgeCheck:
    return FileAgeCheck(spec)
