"""Errors of the update workflows, grouped by what the caller does next.

::

    controller.errors.ControllerError
    ├── controller.errors.ConfigError     a playbook or ``--var`` value is wrong: fix it; the CLI exits 2
    └── WorkflowError                     anything the workflow engine raises on purpose
        ├── RunRefused                    the run was not started; nothing changed; the CLI exits 3
        │   ├── HostBusyError             another run holds the host's lease
        │   ├── HostQuarantinedError      the host is quarantined (``boxkeeper hosts unquarantine``)
        │   └── RollbackRefused           ``runs rollback ID``: that run cannot be rolled back (why)
        ├── UnknownRunError               ``runs show ID``: no such run
        ├── UnknownRolloutError           ``rollouts show ID``: no such rollout
        ├── RolloutStateError             pause/resume/abort that the rollout's state does not allow
        └── ExecutorError                 talking to the host failed (carries ``host``)
            ├── HostKeyError              the host key is not pinned, or differs from the pinned one
            │   ├── UnknownHostKeyError   never trusted: run ``boxkeeper hosts trust HOST``
            │   └── HostKeyMismatchError  differs from the pinned key: refuse, open an incident
            ├── ConnectError              cannot connect or authenticate (within the reconnect deadline)
            ├── ConnectionLostError       the connection dropped while a command ran: outcome unknown
            └── TransferError             put/get of a file failed

Playbook loading errors are ``controller.errors.ConfigError`` (file, key path, expected value), the
same class the controller config uses, so the CLI reports both the same way.
"""

from __future__ import annotations

from controller.errors import ControllerError


class WorkflowError(ControllerError):
    """Base of every error the workflow engine raises on purpose."""


class RunRefused(WorkflowError):
    """The run was refused before anything was done on the host."""


class HostBusyError(RunRefused):
    def __init__(self, host: str, run_id: int | None) -> None:
        self.host = host
        self.run_id = run_id
        super().__init__(f"{host}: another update run holds this host (run {run_id})")


class HostQuarantinedError(RunRefused):
    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(
            f"{host}: host is quarantined ({reason}); clear it with `boxkeeper hosts unquarantine {host}`"
        )


class RollbackRefused(RunRefused):
    """``boxkeeper runs rollback ID`` refused before anything ran: the message says why."""


class UnknownRunError(WorkflowError):
    """No run with that id."""


class RunStateError(WorkflowError):
    """The run's state does not allow what was asked (an abort of a run that has ended)."""


class UnknownRolloutError(WorkflowError):
    """No rollout with that id."""


class RolloutStateError(WorkflowError):
    """The rollout cannot do that now (pause a finished rollout, resume one not paused ...)."""


class ExecutorError(WorkflowError):
    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class HostKeyError(ExecutorError):
    """The host's key is not the pinned one."""


class UnknownHostKeyError(HostKeyError):
    """No pinned key for the host."""


class HostKeyMismatchError(HostKeyError):
    """The host presented a key other than the pinned one (possible man in the middle)."""


class ConnectError(ExecutorError):
    """Connecting or authenticating failed."""


class ConnectionLostError(ExecutorError):
    """The connection dropped while a command was running: its outcome is unknown."""


class TransferError(ExecutorError):
    """A file transfer failed."""
