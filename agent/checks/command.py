"""``command`` check: run a Nagios/monitoring-plugins plugin (argv list, never a shell).

The plugin runs with ``LANG=C``/``LC_ALL=C`` (so its output does not depend on the box's locale),
stdin from /dev/null, in its own process group. At the timeout the whole group is killed
(SIGKILL), so a plugin's children cannot outlive it, and the result is UNKNOWN
"timed out after Ns". Exit codes 0/1/2/3 map to OK/WARNING/CRITICAL/UNKNOWN; anything else
(including death by a signal) is UNKNOWN.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.checks.base import CheckResult, timed_out
from agent.checks.nagios import parse_output
from agent.config import CheckConfig
from agent.report import Status

#: Output beyond this is cut (a plugin is expected to print a few lines).
MAX_OUTPUT_BYTES = 64 * 1024


def plugin_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The agent's environment without locale settings, plus LANG=C, LC_ALL=C, then ``extra``."""
    env = {k: v for k, v in base.items() if not (k == "LANG" or k == "LANGUAGE" or k.startswith("LC_"))}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["LANG"] = "C"
    env["LC_ALL"] = "C"
    env.update(extra)
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # pgid == pid: start_new_session=True


class _Running:
    """The plugin processes of one check that are running now (for :meth:`CommandCheck.close`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.closed = False


@dataclass(frozen=True)
class CommandCheck:
    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    type: str = "command"
    _running: _Running = field(default_factory=_Running, compare=False, repr=False)

    def close(self) -> None:
        """Kill the process groups of plugins still running (the agent is stopping)."""
        with self._running.lock:
            self._running.closed = True
            procs = list(self._running.procs)
        for proc in procs:
            _kill_group(proc)

    @classmethod
    def from_config(cls, cfg: CheckConfig) -> CommandCheck:
        return cls(cfg.name, tuple(cfg.options["command"]), dict(cfg.options.get("env") or {}))

    def run(self, timeout: float) -> CheckResult:
        running = self._running
        with running.lock:
            if running.closed:
                return CheckResult(Status.UNKNOWN, "not run: the agent is stopping")
            try:
                proc = subprocess.Popen(
                    list(self.command),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=plugin_environment(os.environ, self.env),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                return CheckResult(Status.UNKNOWN, f"cannot run {self.command[0]}: {exc.strerror or exc}")
            running.procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _reap(proc)
            return timed_out(timeout)
        finally:
            _kill_group(proc)  # leftovers a plugin left running in its group die with it
            with running.lock:
                running.procs.discard(proc)
        return interpret(proc.returncode, out, err, self.command)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed child; pipes held open by an escaped grandchild must not block us."""
    try:
        proc.communicate(timeout=2.0)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait(timeout=2.0)


def interpret(returncode: int, stdout: bytes, stderr: bytes, argv: Sequence[str] = ()) -> CheckResult:
    """Turn a finished plugin run into a check result (pure)."""
    text = stdout[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
    parsed = parse_output(text)
    err_text = stderr[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace").strip()
    summary = parsed.summary or (err_text.splitlines()[0] if err_text else "(no output)")
    details = parsed.details
    if err_text:
        details = f"{details}\nstderr: {err_text}" if details else f"stderr: {err_text}"
    if returncode < 0:
        try:
            signame = signal.Signals(-returncode).name
        except ValueError:
            signame = str(-returncode)
        status = Status.UNKNOWN
        summary = f"{argv[0] if argv else 'plugin'} killed by {signame}: {summary}"
    elif returncode not in (0, 1, 2, 3):
        status = Status.UNKNOWN
        summary = f"exit code {returncode} (not a plugin status): {summary}"
    else:
        status = Status.from_exit_code(returncode)
    return CheckResult(status, summary, parsed.perfdata, details)

