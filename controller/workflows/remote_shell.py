"""One long-lived ``sh -s`` on an SSH channel that runs the run's commands one after another.

Opening an SSH session per command costs a session setup on the host each time (about 0.2 s on the
test boxes, more through a jump host); a run sends dozens of commands. The shell receives each
command, already wrapped (``env LANG=C LC_ALL=C timeout … sh -c '<command>'``), with stdin from
/dev/null, its stdout and stderr into files of a private temp dir, then prints them between
random markers together with the exit code. Nothing about a command changes but the transport.

Secret environment variables of a command are written on that same channel as assignments in
front of the command (``NAME='value' env LANG=C … timeout … sh -c '…'``): the shell reading its
script from the channel puts them into the command's environment; no argv on the host holds them.
"""

from __future__ import annotations

import re
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Mapping

import paramiko

SETUP = "d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT\n"


class ShellClosed(EOFError):
    """The remote shell (or the connection) is gone."""


class RemoteShell:
    def __init__(self, transport: paramiko.Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.channel = transport.open_session()
        self.channel.exec_command("env LANG=C LC_ALL=C sh -s")
        self.buffer = b""
        self.channel.sendall(SETUP.encode())

    def run(self, wrapped: str, deadline_seconds: float,
            env: Mapping[str, str] | None = None) -> tuple[int, str, str] | None:
        """(exit code, stdout, stderr); None when nothing came back within the deadline."""
        marker = f"__boxkeeper_{secrets.token_hex(8)}"
        assignments = "".join(f"{_name(k)}={shlex.quote(v)} " for k, v in (env or {}).items())
        script = (f'{assignments}{wrapped} </dev/null >"$d/o" 2>"$d/e"; rc=$?; cat "$d/o"; '
                  f'printf "\\n{marker}\\n"; cat "$d/e"; printf "\\n{marker} %s\\n" "$rc"\n')
        self.channel.sendall(script.encode())
        end = re.compile(b"\n" + marker.encode() + rb" (-?\d+)\n")
        deadline = self.clock() + deadline_seconds
        while (found := end.search(self.buffer)) is None:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            self.channel.settimeout(min(remaining, 1.0))
            try:
                data = self.channel.recv(65536)
            except TimeoutError:
                continue
            except socket.timeout:  # noqa: UP041 - paramiko raises socket.timeout on older Pythons
                continue
            if not data:
                raise ShellClosed("the remote shell ended")
            self.buffer += data
        body, self.buffer = self.buffer[:found.start()], self.buffer[found.end():]
        out, _sep, err = body.partition(b"\n" + marker.encode() + b"\n")
        return int(found.group(1)), out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        self.channel.close()


_NAME = re.compile(r"[A-Za-z_]\w*")


def _name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not an environment variable name: {name!r}")
    return name
