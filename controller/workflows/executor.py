"""The seam between the engine and a host: run a command, put/get a file, and when a command timed out.

Implementations: the kinds of :mod:`controller.workflows.executors` (today ``ssh``:
:class:`controller.workflows.ssh.SSHExecutor`, fabric over pinned host keys) and, for unit tests,
``tests/controller/workflows/fakes.py``'s ``FakeExecutor``. One contract test
(tests/controller/workflows/test_executor_contract.py) holds every one of them, fake included, to
the same expectations.

The contract of :meth:`Executor.run`:

* the command runs with ``LANG=C LC_ALL=C`` and the variables of ``Command.env`` (secrets: they
  reach the host over the SSH channel, never in an argv of the host's process table), stdin
  empty, under the host's GNU ``timeout`` with :func:`enforced_timeout` seconds (whole seconds,
  rounded up, at least 1) and a kill grace;
* the result carries the exit code, the output tails and the duration measured by the controller
  from before the command was sent until its exit code arrived;
* ``timed_out`` is decided by :func:`command_timed_out` and by nothing else;
* a connection that drops while the command runs raises ``ConnectionLostError`` (the command's
  outcome is unknown); put/get failures raise ``TransferError``.

When did a command time out? ``timeout -k GRACE T cmd`` exits 124 when T passed and the command
died of TERM, and 137 (128 + KILL) when it had to send KILL after the grace. Neither code is
proof: a command may exit 124 or 137 by itself, and 137 is also what a command killed by the OOM
killer (or any SIGKILL) returns; ``timeout`` then passes the same status through. What ``timeout``
cannot do is fire before T: so a 124 or 137 counts as "timed out" only when the command also ran
for T. The controller's clock starts before the command is sent, so a command that ``timeout``
killed always measures at least T here; :data:`CLOCK_SLACK` allows for the host's clock running
slower than the controller's (NTP slews by at most 500 ppm). What this rule cannot tell apart is a
command that exits 124/137 by itself at the moment its timeout was due: that is a failed step
either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

TAIL_CHARS = 64 * 1024  # kept in memory for captures and patterns; 4000 chars are stored
TIMED_OUT = 124  # GNU timeout: T passed, the command died of TERM
KILLED = 137  # 128 + SIGKILL: timeout had to KILL after the grace, or something else killed it
CLOCK_SLACK = 0.01  # of the timeout: host and controller clocks may disagree by this much


@dataclass(frozen=True)
class Command:
    """What runs on the host (``text``), what may be recorded (``redacted``: secrets as ***), and the
    environment it needs (``env``: secret values the text refers to as ``"$NAME"``; see template.py)."""

    text: str
    redacted: str
    env: Mapping[str, str] = field(default_factory=dict)


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


def enforced_timeout(timeout: float) -> int:
    """The seconds the host's ``timeout`` is given for a step's ``timeout`` (rounded up, at least 1)."""
    return max(1, math.ceil(timeout))


def command_timed_out(exit_code: int, duration: float, timeout: float) -> bool:
    """The one rule of every executor: 124 or 137 after running for the whole timeout (see above)."""
    return exit_code in (TIMED_OUT, KILLED) and duration >= enforced_timeout(timeout) * (1 - CLOCK_SLACK)


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]
