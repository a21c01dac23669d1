"""FakeExecutor: scripted responses for unit tests of the engine (a test double of a host).

It is held to the same contract as the real executors (test_executor_contract.py): when the real
one does something the fake does not model, the fake is changed to match, never the contract.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.workflows.errors import ConnectionLostError, TransferError
from controller.workflows.executor import (
    KILLED,
    TIMED_OUT,
    Command,
    CommandResult,
    command_timed_out,
    enforced_timeout,
)

QUICK = 0.01  # how long a scripted command takes unless it says otherwise


@dataclass(frozen=True)
class Sleeps:
    """A command that runs for ``seconds`` and then exits ``code``. Over its timeout the host's
    ``timeout`` ends it as GNU timeout would: TERM (exit 124) at the timeout, or, when the command
    ``ignores_term``, KILL (exit 137) after the kill grace; ``out``/``err`` are what it printed."""

    seconds: float
    code: int = 0
    out: str = ""
    err: str = ""
    ignores_term: bool = False


Response = tuple[int, str, str] | Sleeps | Callable[[str], tuple[int, str, str]] | BaseException
_PRINTENV = re.compile(r"^printenv((?: [A-Za-z_]\w*)+)$")


class Crash(BaseException):
    """Stands for ``kill -9`` of the controller: nothing after it runs (not even except Exception)."""


@dataclass
class FakeExecutor:
    """Answers each command by the first rule whose regex matches it (default: exit 0, no output).

    A rule's response is ``(exit, stdout, stderr)``, a :class:`Sleeps`, a callable of the command,
    or an exception to raise; a later rule wins over an earlier one. ``once`` rules are used one
    time and then dropped. Every command text is recorded (``commands``: as sent, ``recorded``: as
    it may be stored, ``envs``: its secret environment). Modelled like the real host:
    ``printenv NAME…`` answers from ``env`` (what
    every executor sets: LANG=C, LC_ALL=C, plus the command's own ``env``); ``timed_out`` follows
    executor.py's one rule; ``put``
    and ``get`` move file contents through ``files``; :meth:`drop_connection` makes the next
    operation fail the way a dropped SSH connection does.
    """

    host: str = "box1"
    rules: list[tuple[re.Pattern[str], Response, bool]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)  # each command's own environment
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: {"LANG": "C", "LC_ALL": "C"})
    kill_grace: float = 5.0
    closed: int = 0
    dropped: bool = False

    def on(self, pattern: str, response: Response, *, once: bool = False) -> FakeExecutor:
        self.rules.insert(0, (re.compile(pattern), response, once))  # the latest rule wins
        return self

    def ran(self, pattern: str) -> int:
        return sum(1 for c in self.commands if re.search(pattern, c))

    def drop_connection(self) -> None:
        """The connection drops during the next operation (a run's outcome is then unknown)."""
        self.dropped = True

    def run(self, command: Command, timeout: float) -> CommandResult:
        self.commands.append(command.text)
        self.recorded.append(command.redacted)
        self.envs.append(dict(command.env))
        if self.dropped:
            self.dropped = False
            raise ConnectionLostError(self.host, "connection lost during a command (fake)")
        response = self._response(command.text, {**self.env, **command.env})
        if isinstance(response, BaseException):
            raise response
        if not isinstance(response, Sleeps):
            code, out, err = response(command.text) if callable(response) else response
            response = Sleeps(QUICK, code, out, err)
        code, duration = response.code, response.seconds
        limit = enforced_timeout(timeout)
        if duration > limit:
            if response.ignores_term:  # TERM at the limit does nothing; KILL after the grace
                code, duration = KILLED, limit + self.kill_grace
            else:
                code, duration = TIMED_OUT, limit
        return CommandResult(command.redacted, code, response.out, response.err, duration,
                             timed_out=command_timed_out(code, duration, timeout))

    def _response(self, text: str, env: dict[str, str]) -> Response:
        for i, (regex, response, once) in enumerate(self.rules):
            if regex.search(text):
                if once:
                    del self.rules[i]
                return response
        if m := _PRINTENV.match(text):
            names = m.group(1).split()
            found = [env[n] for n in names if n in env]
            return (0 if len(found) == len(names) else 1, "".join(v + "\n" for v in found), "")
        return (0, "", "")

    def put(self, local: str, remote: str) -> None:
        self.commands.append(f"put {local} {remote}")
        self._check_connection("put", local, remote)
        try:
            self.files[remote] = Path(local).read_bytes()
        except OSError as exc:
            raise TransferError(self.host, f"put {local} → {remote} failed: {exc}") from None

    def get(self, remote: str, local: str) -> None:
        self.commands.append(f"get {remote} {local}")
        self._check_connection("get", remote, local)
        try:
            if remote not in self.files:
                raise FileNotFoundError(f"[Errno 2] No such file: {remote!r} (fake host)")
            Path(local).write_bytes(self.files[remote])
        except OSError as exc:
            raise TransferError(self.host, f"get {remote} → {local} failed: {exc}") from None

    def _check_connection(self, verb: str, src: str, dest: str) -> None:
        if self.dropped:
            self.dropped = False
            raise TransferError(self.host, f"{verb} {src} → {dest} failed: connection lost (fake)")

    def testinfra_args(self, workdir: Path) -> list[str]:
        """The fake has no SSH: a testinfra module runs against the local machine."""
        self.commands.append(f"testinfra {workdir}")
        return ["--hosts=local://"]

    def close(self) -> None:
        self.closed += 1
