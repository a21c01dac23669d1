"""Starting, finding and stopping the servers of the boxes (the only module that sends signals).

Servers run in the foreground as children of the process that started them, so a pytest session
reaps them itself. This machine's PID 1 does not reap orphans: the pytest plugin makes the test
process a child subreaper, so that killed sessions (sshd children, a hung updater) are reaped too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of our servers are re-parented to this process (which reaps them) not to PID 1."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a server in the foreground (own session, output to `log`), record its pid."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            cwd=cwd,
        )
    previous = _CHILDREN.get(proc.pid)
    if previous is not None:  # the pid was recycled: the old child is long gone
        previous.poll()
    _CHILDREN[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def reap_children(timeout: float = 10.0) -> list[int]:
    """At the end of a session: collect every server this process started; stop any that still
    runs (there should be none after `down`). Returns the pids that had to be stopped."""
    stopped = []
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is None:
            stopped.append(pid)
            child.terminate()
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        _CHILDREN.pop(pid, None)
    return stopped


def run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a helper command to completion (output captured, never raises on exit code)."""
    return subprocess.run(
        list(argv),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        user=user,
        group=user,
        extra_groups=[] if user else None,
        check=False,
    )


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_running(pid: int | None) -> bool:
    """True for a live process; a zombie (dead, not yet reaped) is not running."""
    if pid is None:
        return False
    _reap([pid])
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        child = _CHILDREN.get(pid)
        if child is not None:
            if child.poll() is not None:
                _CHILDREN.pop(pid, None)
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def kill_processes(procs: Sequence[psutil.Process], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal processes, wait until they are gone (reaping our own), SIGKILL what is left."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    pids = [p.pid for p in procs]
    while time.monotonic() < deadline:
        if not any(is_running(pid) for pid in pids):
            return
        time.sleep(0.05)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(is_running(pid) for pid in pids):
        time.sleep(0.05)


def stop(pid_file: Path, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop the server named by a pid file and all its descendants; remove the pid file."""
    pid = read_pid(pid_file)
    if pid is not None and is_running(pid):
        kill_processes(_tree(pid), sig, timeout)
    pid_file.unlink(missing_ok=True)


def processes_of(root: Path) -> list[psutil.Process]:
    """Every live process that belongs to a box: started in it, running from it, or an SSH
    session of it (sshd sets BOX_ROOT in every session's environment)."""
    marker = str(root)
    in_root = re.compile(re.escape(marker) + r"(/|\s|$)")
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        cwd = proc.info["cwd"] or ""
        hit = bool(in_root.search(cmdline)) or cwd == marker or cwd.startswith(marker + "/")
        if not hit:
            with contextlib.suppress(psutil.Error):
                hit = proc.environ().get("BOX_ROOT") == marker
        if hit:
            found.append(proc)
    return found


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate()` until true or `timeout` seconds passed."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
