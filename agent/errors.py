"""Errors of the agent, grouped by what the caller does next.

::

    AgentError                      anything the agent raises on purpose
    ├── ConfigError                 fix the config file; the CLI exits 2
    ├── SpecError                   a spec's keys do not fit together (raised by its __post_init__,
    │                               so by a spec built in code too); the config loader turns it
    │                               into a ConfigError naming the file and the key path
    ├── SecretFileError             fix a file holding a secret (missing, not 0600, not text)
    │   └── TokenFileError          ... the controller token file; the agent exits 2
    └── SpoolError                  the spool directory is unusable (permissions, disk); exit 1

Check failures are not exceptions: a check that fails, hangs or crashes becomes a
``CheckResult`` with status CRITICAL or UNKNOWN and a summary that says why.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A config value is missing or wrong. Names the file, the key path and what was expected."""

    def __init__(self, source: str, key: str, expected: str, got: object = ...) -> None:
        self.source = source
        self.key = key
        self.expected = expected
        self.got = got
        text = f"{source}: {key}: expected {expected}"
        if got is not ...:
            shown = repr(got)
            text += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
        super().__init__(text)


class SpecError(AgentError):
    """Two keys of one spec contradict each other (``warning`` above ``critical``). ``key`` is the
    key to fix, relative to the spec. Not a ValueError on purpose: msgspec would swallow that into a
    message without the key."""

    def __init__(self, key: str, expected: str) -> None:
        self.key = key
        self.expected = expected
        super().__init__(f"{key}: expected {expected}")


class SecretFileError(AgentError):
    """A file holding a secret (a database password) cannot be used as it is: missing, readable by
    group or others, not text. The message names the file and the fix, never the secret."""


class TokenFileError(SecretFileError):
    """The controller token file cannot be used as it is."""


class SpoolError(AgentError):
    """The spool directory cannot be written."""
