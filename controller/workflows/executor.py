"""The seam between the engine and a host: run a command, put/get a file.

Implementations: :class:`controller.workflows.ssh.SSHExecutor` (fabric over pinned host keys) and,
for unit tests, ``tests/controller/workflows/fakes.py``'s ``FakeExecutor`` (scripted responses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

TAIL_CHARS = 64 * 1024  # kept in memory for captures and patterns; 4000 chars are stored


@dataclass(frozen=True)
class Command:
    """What runs on the host (``text``) and what may be recorded (``redacted``: secrets as ***)."""

    text: str
    redacted: str


@dataclass(frozen=True)
class CommandResult:
    command_redacted: str
    exit_code: int
    stdout_tail: str
    stderr_tail: str
    duration: float
    timed_out: bool = False


class Executor(Protocol):
    """Runs commands on one host. Raises :class:`~controller.workflows.errors.ExecutorError` subclasses
    when it cannot reach the host (``ConnectionLostError``: the command's outcome is unknown)."""

    host: str

    def run(self, command: Command, timeout: float) -> CommandResult: ...

    def put(self, local: str, remote: str) -> None: ...

    def get(self, remote: str, local: str) -> None: ...

    def close(self) -> None: ...


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]
