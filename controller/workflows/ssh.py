"""SSHExecutor: fabric Connection with pinned host keys (RejectPolicy), timeouts, LANG=C, reconnect.

Every command runs as ``env LANG=C LC_ALL=C timeout -k GRACE T sh -c '<command>'``: the remote
``timeout`` kills the command's whole process group when it overruns, and the local side gives up
a little later (and drops the connection) if the host does not answer at all. Whether a command
timed out is decided by the seam's one rule (executor.py, ``command_timed_out``: exit 124 or 137
after the whole timeout). A dropped connection raises ConnectionLostError (the outcome of that
command is unknown); the next call reconnects, retrying until ``reconnect_deadline``. Host keys
come only from the controller's known_hosts file: an unknown key is refused (paramiko's
RejectPolicy), never accepted on first sight.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paramiko
from fabric import Config, Connection

from controller.configkit import Bool, ConfigModel, Duration, PositiveInt
from controller.workflows.errors import (
    ConnectError,
    ConnectionLostError,
    HostKeyMismatchError,
    TransferError,
    UnknownHostKeyError,
)
from controller.workflows.executor import (
    TIMED_OUT,
    Command,
    CommandResult,
    command_timed_out,
    enforced_timeout,
    tail,
)
from controller.workflows.remote_shell import RemoteShell


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in. ``jump`` is ``[user@]host[:port]`` of a bastion (same key file)."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    jump: str | None = None
    known_hosts: str = "/var/lib/boxkeeper/known_hosts"


class SSHOptions(ConfigModel):
    """The ``ssh`` executor's options (executors.py): timeouts of the connection, how long to keep
    reconnecting, the kill grace after a command's timeout."""

    type: Literal["ssh"] = "ssh"
    connect_timeout: Duration = 10.0
    auth_timeout: Duration = 15.0
    banner_timeout: Duration = 15.0
    keepalive: PositiveInt = 10
    reconnect_deadline: Duration = 120.0
    reconnect_interval: Duration = 2.0
    kill_grace: Duration = 5.0
    #: run the commands in one long-lived remote shell (remote_shell.py) instead of a session each
    persistent_shell: Bool = True


DEFAULT_OPTIONS = SSHOptions()


def parse_jump(jump: str, default_user: str) -> tuple[str, str, int]:
    user, _, rest = jump.rpartition("@")
    host, sep, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    return user or default_user, host if sep else rest, int(port) if sep else 22


def remote_command(command: str, timeout: float, grace: float) -> str:
    seconds = enforced_timeout(timeout)
    return (f"env LANG=C LC_ALL=C timeout -k {math.ceil(grace)} {seconds} "
            f"sh -c {shlex.quote(command)} </dev/null")


class SSHExecutor:
    def __init__(self, target: SSHTarget, options: SSHOptions = DEFAULT_OPTIONS, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = target.name
        self.target = target
        self.options = options
        self._clock = clock
        self._sleep = sleep
        self._conn: Connection | None = None
        self._shell: RemoteShell | None = None
        self._ever_connected = False

    # ------------------------------------------------------------ connection

    def _pinned(self, host: str, port: int, user: str, gateway: Connection | None = None) -> Connection:
        o = self.options
        kwargs: dict[str, Any] = {
            "auth_timeout": o.auth_timeout, "banner_timeout": o.banner_timeout,
            "look_for_keys": False, "allow_agent": False,
        }
        if self.target.key_file:
            kwargs["key_filename"] = self.target.key_file
        conn = Connection(host, user=user, port=port, connect_timeout=math.ceil(o.connect_timeout),
                          connect_kwargs=kwargs, gateway=gateway,
                          config=Config(overrides={"load_ssh_configs": False}))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if _exists(self.target.known_hosts):
            conn.client.load_host_keys(self.target.known_hosts)
        return conn

    def _new_connection(self) -> Connection:
        gateway = None
        if self.target.jump:
            user, host, port = parse_jump(self.target.jump, self.target.user)
            gateway = self._pinned(host, port, user)
        return self._pinned(self.target.address, self.target.port, self.target.user, gateway)

    def _connection(self) -> Connection:
        if self._conn is not None and self._conn.is_connected:
            return self._conn
        self._drop()
        deadline = self._clock() + (self.options.reconnect_deadline if self._ever_connected else 0)
        where = f"{self.target.address}:{self.target.port}"
        while True:
            conn = self._new_connection()
            try:
                conn.open()
                if conn.transport is not None:
                    conn.transport.set_keepalive(self.options.keepalive)
                self._conn, self._ever_connected = conn, True
                return conn
            except paramiko.BadHostKeyException as exc:
                _close(conn)
                raise HostKeyMismatchError(self.host, f"host key of {exc.hostname} differs from the pinned "
                                           f"key (possible man in the middle): refused") from None
            except paramiko.AuthenticationException as exc:
                _close(conn)
                raise ConnectError(self.host, f"authentication to {where} failed: {exc}") from None
            except (OSError, paramiko.SSHException, EOFError) as exc:
                _close(conn)
                if "not found in known_hosts" in str(exc):
                    server = str(exc).removeprefix("Server ").removesuffix(" not found in known_hosts")
                    raise UnknownHostKeyError(self.host, f"no pinned host key for {server} (connecting to "
                                              f"{where}): run `boxkeeper hosts trust {self.host}`") from None
                if self._clock() >= deadline:
                    raise ConnectError(self.host, f"cannot connect to {where}: {exc or type(exc).__name__}") \
                        from None
                self._sleep(self.options.reconnect_interval)

    def _drop(self) -> None:
        if self._shell is not None:
            with contextlib.suppress(Exception):
                self._shell.close()
            self._shell = None
        if self._conn is not None:
            _close(self._conn)
        self._conn = None

    def close(self) -> None:
        self._drop()

    # ------------------------------------------------------------ operations

    def run(self, command: Command, timeout: float) -> CommandResult:
        """Run one command in the long-lived remote shell, or (``persistent_shell: false``) in a
        shell of its own on a new SSH session; either way the command and its secret environment
        travel on the channel (remote_shell.py), never on a command line."""
        conn = self._connection()
        wrapped = remote_command(command.text, timeout, self.options.kill_grace)
        started = self._clock()
        one_off: RemoteShell | None = None
        try:
            assert conn.transport is not None
            if not self.options.persistent_shell:
                shell = one_off = RemoteShell(conn.transport)
            elif self._shell is None:
                shell = self._shell = RemoteShell(conn.transport)
            else:
                shell = self._shell
            answer = shell.run(wrapped, timeout + self.options.kill_grace + 10, command.env)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self._drop()
            raise ConnectionLostError(self.host, f"connection lost during a command: {exc}") from None
        finally:
            if one_off is not None:
                with contextlib.suppress(Exception):
                    one_off.close()
        duration = self._clock() - started
        if answer is None:
            self._drop()  # the host stopped answering: start clean next time
            return CommandResult(command.redacted, TIMED_OUT, "", "", duration,
                                 timed_out=command_timed_out(TIMED_OUT, duration, timeout))
        code, out, err = answer
        return CommandResult(command.redacted, code, tail(out), tail(err), duration,
                             timed_out=command_timed_out(code, duration, timeout))

    def testinfra_args(self, workdir: Path) -> list[str]:
        """pytest-testinfra arguments reaching this host with the same pinned settings (OpenSSH client)."""
        t = self.target
        lines = ["Host target", f"  HostName {t.address}", f"  Port {t.port}", f"  User {t.user}",
                 "  StrictHostKeyChecking yes", f"  UserKnownHostsFile {t.known_hosts}", "  BatchMode yes",
                 f"  ConnectTimeout {math.ceil(self.options.connect_timeout)}", "  IdentitiesOnly yes",
                 "  SendEnv -LC_* -LANG"]
        if t.key_file:
            lines.append(f"  IdentityFile {t.key_file}")
        if t.jump:
            user, host, port = parse_jump(t.jump, t.user)
            lines.append(f"  ProxyJump {user}@{host}:{port}")
        config = workdir / "ssh_config"
        config.write_text("\n".join(lines) + "\n")
        return ["--hosts=ssh://target", f"--ssh-config={config}"]

    def open_tunnel(self, address: str, port: int) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from this host to ``address:port`` (``hosts trust`` fetches a
        host key through a jump host with it)."""
        conn = self._connection()
        assert conn.transport is not None
        try:
            channel: paramiko.Channel = conn.transport.open_channel("direct-tcpip", (address, port),
                                                                    ("127.0.0.1", 0))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectError(self.host, f"cannot open a tunnel to {address}:{port}: {exc}") from None
        return channel

    def put(self, local: str, remote: str) -> None:
        try:
            self._connection().put(local, remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self._drop()
            raise TransferError(self.host, f"put {local} → {remote} failed: {exc}") from None

    def get(self, remote: str, local: str) -> None:
        try:
            self._connection().get(remote, local)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self._drop()
            raise TransferError(self.host, f"get {remote} → {local} failed: {exc}") from None


def _exists(path: str) -> bool:
    return Path(path).is_file()


def _close(conn: Connection) -> None:
    # closing a broken connection must not mask the real error
    with contextlib.suppress(Exception):
        conn.close()
