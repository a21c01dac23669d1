"""Health checks: one module per check type, each a small class with ``name``, ``type`` and ``run``.

:func:`build_check` turns a validated :class:`~agent.config.CheckConfig` into the check object.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.checks.base import Check, CheckResult
from agent.checks.command import CommandCheck
from agent.checks.disk import DiskCheck
from agent.checks.file_age import FileAgeCheck
from agent.checks.http import HttpCheck
from agent.checks.process import ProcessCheck
from agent.checks.tcp import TcpCheck
from agent.config import CheckConfig

_BUILDERS: dict[str, Callable[[CheckConfig], Check]] = {
    "http": HttpCheck.from_config,
    "process": ProcessCheck.from_config,
    "tcp": TcpCheck.from_config,
    "disk": DiskCheck.from_config,
    "file_age": FileAgeCheck.from_config,
    "command": CommandCheck.from_config,
}


def build_check(cfg: CheckConfig) -> Check:
    """The check object for one configured check (the type was validated by the config)."""
    return _BUILDERS[cfg.type](cfg)


__all__ = ["Check", "CheckResult", "build_check"]
