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

from agent.checks.base import CheckResult
from agent.config import CheckConfig
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


@dataclass(frozen=True)
class FileAgeCheck:
    name: str
    glob: str
    max_age: float
    warning_age: float | None = None
    min_size: int = 0
    min_count: int = 1
    type: str = "file_age"
    wall: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, cfg: CheckConfig) -> FileAgeCheck:
        o = cfg.options
        return cls(cfg.name, o["glob"], o["max_age"], o["warning_age"], o["min_size"], o["min_count"])

    def run(self, timeout: float) -> CheckResult:
        base = base_directory(self.glob)
        if os.path.isdir(base) and not os.access(base, os.R_OK | os.X_OK):
            return CheckResult(Status.UNKNOWN, f"cannot read directory {base}: permission denied "
                                               f"(the agent's user needs read access)")
        files: list[tuple[str, os.stat_result]] = []
        for path in glob.glob(self.glob, recursive=True):
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between glob and stat (rotation)
            if stat.S_ISREG(st.st_mode):
                files.append((path, st))
        count_perf = PerfValue("count", float(len(files)), "", min=0.0)
        if len(files) < self.min_count:
            if not files:
                where = "" if os.path.isdir(base) else f" (directory {base} does not exist)"
                summary = f"no file matches {self.glob}{where}"
            else:
                summary = f"only {len(files)} files match {self.glob} (want at least {self.min_count})"
            return CheckResult(Status.CRITICAL, summary, (count_perf,))
        if not files:  # min_count: 0 and nothing there
            return CheckResult(Status.OK, f"no file matches {self.glob} (none required)", (count_perf,))
        path, st = max(files, key=lambda f: (f[1].st_mtime, f[0]))
        age = self.wall() - st.st_mtime
        status = Status.OK
        problems: list[str] = []
        if age > self.max_age:
            status = Status.CRITICAL
            problems.append(f"older than {age_text(self.max_age)}")
        elif self.warning_age is not None and age > self.warning_age:
            status = Status.WARNING
            problems.append(f"older than {age_text(self.warning_age)}")
        if st.st_size < self.min_size:
            status = Status.CRITICAL
            problems.append(f"smaller than {size_text(self.min_size)}")
        summary = f"newest {path} is {age_text(age)} old, {size_text(st.st_size)}"
        if problems:
            summary += ": " + ", ".join(problems)
        perf = (
            PerfValue("age", round(max(age, 0.0), 3), "s", self.warning_age, self.max_age, 0.0),
            PerfValue("size", float(st.st_size), "B", None, float(self.min_size), 0.0),
            count_perf,
        )
        return CheckResult(status, summary, perf)
