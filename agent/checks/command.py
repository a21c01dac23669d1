"""``command`` check: run a Nagios/monitoring-plugins plugin (argv list, never a shell).

The plugin runs with ``LANG=C``/``LC_ALL=C`` (so its output does not depend on the box's locale),
stdin from /dev/null, in its own process group (``os.posix_spawn`` with ``setsid``; see
:func:`_spawn`). At the timeout the whole group is killed
(SIGKILL), so a plugin's children cannot outlive it, and the result is UNKNOWN
"timed out after Ns". Exit codes 0/1/2/3 map to OK/WARNING/CRITICAL/UNKNOWN; anything else
(including death by a signal) is UNKNOWN.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional

import msgspec

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources, timed_out
from agent.checks.nagios import parse_output
from agent.configtypes import Argv, Env
from agent.report import Status

log = logging.getLogger(__name__)

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


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # pgid == pid: the plugin was started with setsid


class _Running:
    """The plugin processes of one check that are running now (for :meth:`CommandCheck.close`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pids: set[int] = set()
        self.closed = False
        self.env: Optional[dict[str, str]] = None  # built on the first run, then reused


class CommandSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["command"] = "command"
    command: Argv
    env: Env = msgspec.field(default_factory=Env)


@dataclass(frozen=True)
class CommandCheck(FromSpec):
    spec: CommandSpec
    _running: _Running = field(default_factory=_Running, compare=False, repr=False)

    def close(self) -> None:
        """Kill the process groups of plugins still running (the agent is stopping)."""
        with self._running.lock:
            self._running.closed = True
            pids = list(self._running.pids)
        for pid in pids:
            _kill_group(pid)

    def run(self, timeout: float) -> CheckResult:
        command = self.spec.command
        running = self._running
        deadline = time.monotonic() + timeout
        with running.lock:
            if running.closed:
                return CheckResult(Status.UNKNOWN, "not run: the agent is stopping")
            if running.env is None:  # the agent's environment does not change while it runs
                running.env = plugin_environment(os.environ, self.spec.env)
            try:
                pid, out_fd, err_fd = _spawn(command, running.env)
            except OSError as exc:
                return CheckResult(Status.UNKNOWN, f"cannot run {command[0]}: {exc.strerror or exc}")
            running.pids.add(pid)
        reaped = False
        try:
            output = _read_until_exit(pid, out_fd, err_fd, deadline)
            if output is None:
                _kill_group(pid)
                _reap(pid)
                reaped = True
                return timed_out(timeout)
            out, err, status = output
            reaped = True
        finally:
            os.close(out_fd)
            os.close(err_fd)
            if not reaped:  # an unexpected error: do not leave the plugin behind
                _kill_group(pid)
                _reap(pid)
            _kill_group(pid)  # leftovers a plugin left running in its group die with it
            with running.lock:
                running.pids.discard(pid)
        return interpret(os.waitstatus_to_exitcode(status), out, err, command)


def build(spec: CommandSpec, resources: Resources) -> CommandCheck:
    return CommandCheck(spec)


def _spawn(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, int, int]:
    """Start ``argv`` in a new session (its own process group), stdin /dev/null, stdout and stderr
    to pipes; returns (pid, stdout fd, stderr fd).

    ``os.posix_spawn`` (vfork + exec in the C library) instead of ``subprocess.Popen``: the same
    child for about half the agent's CPU per run. The pipes' write ends are close-on-exec in the
    agent and duplicated onto 1 and 2 in the child only; every other descriptor of the agent is
    close-on-exec too (PEP 446), so the plugin inherits nothing else. A name without a slash is
    looked up in the plugin's ``PATH``, as ``Popen`` does.
    """
    path = argv[0]
    if "/" not in path:
        found = shutil.which(path, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        path = found
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            path, list(argv), env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, out_r, err_r


def _read_until_exit(
    pid: int, out_fd: int, err_fd: int, deadline: float
) -> Optional[tuple[bytes, bytes, int]]:
    """Read stdout and stderr to their end (keeping the first MAX_OUTPUT_BYTES of each) and reap
    the plugin; ``(stdout, stderr, wait status)``, or None when ``deadline`` passed first (a
    plugin still running, or a child of it still holding the pipes open)."""
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    poller = select.poll()
    for fd in buffers:
        poller.register(fd, select.POLLIN)
    pending = len(buffers)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        for fd, _event in poller.poll(max(1, math.ceil(left * 1000))):
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                pending -= 1
                continue
            buf = buffers[fd]
            if len(buf) < MAX_OUTPUT_BYTES:
                buf += chunk[: MAX_OUTPUT_BYTES - len(buf)]
    delay = 0.001
    while True:  # both pipes closed: the plugin has exited or is about to
        waited, status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return bytes(buffers[out_fd]), bytes(buffers[err_fd]), status
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)


def _reap(pid: int, patience: float = 5.0) -> None:
    """Collect a killed plugin's zombie; a process stuck in the kernel (D state, e.g. on a hung
    NFS mount) dies only when the call returns: after ``patience`` seconds it is left behind."""
    end = time.monotonic() + patience
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG)[0] != pid:
            if time.monotonic() > end:
                log.warning("plugin process %d does not die after SIGKILL; leaving it", pid)
                return
            time.sleep(0.01)


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



def run_argv(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, bytes, bytes] | None:
    """Run ``argv`` once as a plugin is run (own process group, stdin /dev/null, output bounded):
    ``(exit code, stdout, stderr)``, or None when it did not finish within ``timeout`` (its group
    is then killed). Raises OSError when it cannot be started. For checks that run a tool and
    read its output themselves (``rac``, ``psql``)."""
    deadline = time.monotonic() + timeout
    pid, out_fd, err_fd = _spawn(argv, env)
    reaped = False
    try:
        output = _read_until_exit(pid, out_fd, err_fd, deadline)
        if output is not None:
            reaped = True
            out, err, status = output
            return os.waitstatus_to_exitcode(status), out, err
        return None
    finally:
        os.close(out_fd)
        os.close(err_fd)
        _kill_group(pid)
        if not reaped:
            _reap(pid)
