"""Talking to a box like the controller does: SSH with its key and a strict known_hosts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .info import BoxInfo


@dataclass(frozen=True)
class Result:
    exit_code: int | None  # None: the command did not finish before the timeout
    stdout: str
    stderr: str


def known_hosts_file(info: BoxInfo, directory: Path) -> Path:
    path = directory / f"known_hosts-{info.name}"
    path.write_text(info.known_hosts + "\n")
    return path


def connect(info: BoxInfo, known_hosts: Path | None = None, timeout: float = 10) -> paramiko.SSHClient:
    """Key login; the host key must match the known_hosts line (RejectPolicy: unknown = refused)."""
    client = paramiko.SSHClient()
    if known_hosts is None:
        known_hosts = Path(info.ssh_key).with_name("known_hosts")
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        info.address,
        port=info.ssh_port,
        username=info.ssh_user,
        key_filename=info.ssh_key,
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def run(info: BoxInfo, command: str, timeout: float = 60) -> Result:
    """Run one command in a new SSH session; exit_code None if it did not finish in time."""
    client = connect(info)
    try:
        return run_on(client, command, timeout)
    finally:
        client.close()


def run_on(client: paramiko.SSHClient, command: str, timeout: float = 60) -> Result:
    transport = client.get_transport()
    assert transport is not None
    channel = transport.open_session()
    channel.exec_command(command)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            code: int | None = channel.recv_exit_status()
            break
        if channel.closed and not channel.exit_status_ready():
            code = -1
            break
        time.sleep(0.02)
    else:
        code = None
    channel.close()
    return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
