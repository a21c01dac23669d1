"""What the box is: hostname, OS (``PRETTY_NAME`` of /etc/os-release), kernel, boot time.

:meth:`FactsCollector.facts` gives the :class:`~agent.report.Facts` sent with every report;
:meth:`FactsCollector.collect` gives ``boxkeeper_boot_time_seconds`` (unix seconds, a gauge).
The OS name and boot time are read once (they change only with a reboot, which restarts the
agent).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Protocol

from agent.report import Facts, Sample


class BootTimeSource(Protocol):
    def boot_time(self) -> float: ...


def read_os_release(path: Path) -> str:
    """``PRETTY_NAME`` (or ``NAME VERSION_ID``) from an os-release file; "unknown" if absent."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or key.strip().startswith("#"):
            continue
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip().strip("\"'")]
        values[key.strip()] = " ".join(parts)
    if values.get("PRETTY_NAME"):
        return values["PRETTY_NAME"]
    joined = " ".join(v for v in (values.get("NAME"), values.get("VERSION_ID")) if v)
    return joined or "unknown"


class FactsCollector:
    name = "facts"

    def __init__(
        self,
        ps: BootTimeSource,
        *,
        os_release: Path = Path("/etc/os-release"),
        uname: Callable[[], os.uname_result] = os.uname,
    ) -> None:
        self._ps = ps
        self._uname = uname
        self._boot: Optional[float] = None
        self._os = read_os_release(os_release)
        if self._os == "unknown" and os_release == Path("/etc/os-release"):
            self._os = read_os_release(Path("/usr/lib/os-release"))

    def boot_time(self) -> float:
        """Boot time, read once (``psutil.boot_time()`` parses all of ``/proc/stat`` per call, and
        the value is fixed for a boot, which restarts the agent); a failure is not cached."""
        if self._boot is None:
            self._boot = float(self._ps.boot_time())
        return self._boot

    def facts(self) -> Facts:
        uname = self._uname()
        try:
            boot: Optional[float] = self.boot_time()
        except Exception:
            boot = None
        return Facts(hostname=uname.nodename, os=self._os, kernel=uname.release, boot_time=boot)

    def collect(self) -> tuple[Sample, ...]:
        return (Sample("boxkeeper_boot_time_seconds", self.boot_time()),)
