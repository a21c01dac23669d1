"""Errors of the test-box harness.

BoxError                      anything the harness could not do; carries the box name
├── BoxStartError             a server of a box did not come up (names the server and its log)
├── BoxCommandError           a helper command failed (argv, exit code, output tail)
├── NoFreeSlotError           every loopback address 127.0.0.11-99 is taken
└── UnknownNameError          unknown box, release or fault kind (lists the valid ones)
"""

from __future__ import annotations


class BoxError(Exception):
    """Base class: something the test-box harness could not do."""

    def __init__(self, message: str, *, box: str | None = None) -> None:
        super().__init__(f"{box}: {message}" if box else message)
        self.box = box


class BoxStartError(BoxError):
    """A server of a box did not come up in time."""

    def __init__(self, server: str, log_tail: str, *, box: str | None = None) -> None:
        super().__init__(f"{server} did not start; log tail:\n{log_tail}", box=box)
        self.server = server
        self.log_tail = log_tail


class BoxCommandError(BoxError):
    """A command run by the harness failed."""

    def __init__(self, argv: list[str], returncode: int, output: str, *, box: str | None = None) -> None:
        super().__init__(f"{argv[0]} exited {returncode}: {output[-2000:]}", box=box)
        self.argv = argv
        self.returncode = returncode
        self.output = output


class NoFreeSlotError(BoxError):
    """No free loopback address is left for a new box."""


class UnknownNameError(BoxError):
    """An unknown box name, release or fault kind was asked for."""
