"""``rac``, 1C's cluster administration client, run against ras (DOMAIN.md "1C:Enterprise server").

``rac`` prints ``key : value`` records separated by blank lines; errors go to stderr (its exit code
for errors is not documented: any non-zero code, or an error text with nothing on stdout, is an
error). The documented error texts are told apart by :class:`RacError` ``kind``:

- ``agent_down``: "Агент кластера недоступен" (the cluster agent does not answer);
- ``no_rights``: "Недостаточно прав" (the infobase needs a user and password);
- ``not_found``: "Информационная база не найдена";
- ``timeout``: no answer within the timeout (the process group is killed);
- ``failed``: anything else (ras down, an unknown option), with rac's first line.

``rac`` runs with ``LANG=C`` like every command of the agent (whether the real rac then still
prints its errors in Russian is [unverified]; the CRITICAL of the cluster check does not depend on
the text). A password, when one must be given (``--infobase-pwd``, the only way rac takes it),
is in rac's argv for the time it runs, and never in an error message: messages name the rac
command (``infobase info``), never its options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from agent.checks.command import plugin_environment, run_argv

DEFAULT_RAS = "localhost:1545"
AGENT_DOWN = "Агент кластера недоступен"
NO_RIGHTS = "Недостаточно прав"
NOT_FOUND = "Информационная база не найдена"

Record = Mapping[str, str]


class RacError(Exception):
    """A rac command failed; ``kind`` says what it means (see the module docstring)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def parse_records(text: str) -> list[dict[str, str]]:
    """rac's output → one dict per record (blank lines between records; ``key : value``; a
    value in double quotes loses them)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip():
            if current:
                records.append(current)
                current = {}
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        current[key.strip()] = value
    if current:
        records.append(current)
    return records


@dataclass(frozen=True)
class Rac:
    """One rac binary and the ras it asks."""

    path: str
    ras: str = DEFAULT_RAS

    def run(self, words: Sequence[str], timeout: float, *,
            secret_options: Sequence[str] = ()) -> list[dict[str, str]]:
        """``rac <ras> <words...> <secret_options...>`` → its records. ``words`` name the command
        (they may appear in messages); ``secret_options`` (``--infobase-pwd=…``) never do.
        Raises :class:`RacError`."""
        what = " ".join(w for w in words if not w.startswith("--"))
        argv = [self.path, self.ras, *words, *secret_options]
        try:
            done = run_argv(argv, _environment(), timeout)
        except OSError as exc:
            raise RacError("failed", f"cannot run {self.path}: {exc.strerror or exc}") from None
        if done is None:
            raise RacError("timeout", f"rac {what} did not answer within {timeout:g}s")
        code, out, err = done
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace").strip()
        if code != 0 or (stderr and not stdout.strip()):
            raise _error(what, code, stderr or stdout.strip())
        return parse_records(stdout)

    def cluster(self, timeout: float, wanted: Optional[str] = None) -> str:
        """The cluster's id: ``wanted`` when rac lists it, else the first one listed."""
        clusters = [r.get("cluster", "") for r in self.run(["cluster", "list"], timeout)]
        clusters = [c for c in clusters if c]
        if wanted is not None:
            if wanted not in clusters:
                raise RacError("failed", f"rac cluster list does not list the cluster {wanted}")
            return wanted
        if not clusters:
            raise RacError("failed", "rac cluster list lists no cluster")
        return clusters[0]


_ENV: dict[str, str] = {}


def _environment() -> dict[str, str]:
    if not _ENV:
        _ENV.update(plugin_environment(os.environ, {}))
    return _ENV


def _error(what: str, code: int, text: str) -> RacError:
    first = next((line.strip() for line in text.splitlines() if line.strip()), f"exit code {code}")
    if AGENT_DOWN in text:
        return RacError("agent_down", f"rac {what}: {AGENT_DOWN} (the cluster agent does not answer)")
    if NO_RIGHTS in text:
        return RacError("no_rights", f"rac {what}: {first}")
    if NOT_FOUND in text:
        return RacError("not_found", f"rac {what}: {first}")
    return RacError("failed", f"rac {what} failed (exit code {code}): {first}")
