"""Check objects from a name and keyword options, as the tests write them: the options go into the
type's spec (built in code, so not parsed: give values, not config text), the rest (injected
psutil, clocks) to the check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.checks.command import CommandCheck, CommandSpec
from agent.checks.http import HttpCheck, HttpSpec
from agent.checks.process import ProcessCheck, ProcessSpec, PsutilLike


def http_check(name: str, url: str, **options: Any) -> HttpCheck:
    return HttpCheck(HttpSpec(name=name, url=url, **options))


def process_check(
    name: str, *, psutil: PsutilLike | None = None, own_pid: int | None = None, **options: Any,
) -> ProcessCheck:
    return ProcessCheck(ProcessSpec(name=name, **options), psutil=psutil, own_pid=own_pid)


def command_check(name: str, command: Sequence[str], **options: Any) -> CommandCheck:
    return CommandCheck(CommandSpec(name=name, command=tuple(command), **options))
