"""FakeExecutor: scripted responses for unit tests of the engine (a test double of a host)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.workflows.executor import Command, CommandResult

Response = tuple[int, str, str] | Callable[[str], tuple[int, str, str]] | BaseException


class Crash(BaseException):
    """Stands for ``kill -9`` of the controller: nothing after it runs (not even except Exception)."""


@dataclass
class FakeExecutor:
    """Answers each command by the first rule whose regex matches it (default: exit 0, no output).

    A rule's response is ``(exit, stdout, stderr)``, a callable of the command, or an exception to
    raise; a later rule wins over an earlier one. ``once`` rules are used one time and then
    dropped. Every command text is recorded.
    """

    host: str = "box1"
    rules: list[tuple[re.Pattern[str], Response, bool]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    closed: int = 0

    def on(self, pattern: str, response: Response, *, once: bool = False) -> FakeExecutor:
        self.rules.insert(0, (re.compile(pattern), response, once))  # the latest rule wins
        return self

    def ran(self, pattern: str) -> int:
        return sum(1 for c in self.commands if re.search(pattern, c))

    def run(self, command: Command, timeout: float) -> CommandResult:
        self.commands.append(command.text)
        self.recorded.append(command.redacted)
        for i, (regex, response, once) in enumerate(self.rules):
            if regex.search(command.text):
                if once:
                    del self.rules[i]
                if isinstance(response, BaseException):
                    raise response
                code, out, err = response(command.text) if callable(response) else response
                return CommandResult(command.redacted, code, out, err, 0.01, timed_out=code == 124)
        return CommandResult(command.redacted, 0, "", "", 0.01)

    def put(self, local: str, remote: str) -> None:
        self.commands.append(f"put {local} {remote}")
        self.files[remote] = local

    def get(self, remote: str, local: str) -> None:
        self.commands.append(f"get {remote} {local}")

    def close(self) -> None:
        self.closed += 1
