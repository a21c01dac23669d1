"""Pinned SSH host keys: fetch a host's key (no authentication), show its fingerprint, pin it.

The controller's known_hosts file (default ``<state_dir>/known_hosts``, i.e.
``/var/lib/boxkeeper/known_hosts``) is the only source of trust: the SSH executor uses paramiko's
RejectPolicy against it, so an unknown key is refused and a changed key is refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import paramiko

from controller.workflows.errors import ConnectError


def known_hosts_name(address: str, port: int) -> str:
    """The name paramiko looks up: ``addr`` for port 22, else ``[addr]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: ``SHA256:`` + unpadded base64 of the key blob's SHA-256."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fetch_host_key(address: str, port: int, timeout: float = 10.0,
                   sock: socket.socket | paramiko.Channel | None = None) -> paramiko.PKey:
    """Key exchange only (no authentication): the key the server presents."""
    try:
        if sock is None:
            sock = socket.create_connection((address, port), timeout=timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout
            transport.start_client(timeout=timeout)
            return transport.get_remote_server_key()
        finally:
            transport.close()
    except (OSError, paramiko.SSHException, EOFError) as exc:
        raise ConnectError(f"{address}:{port}", f"cannot fetch the host key: {exc}") from None


def pinned_keys(known_hosts: str | Path, address: str, port: int) -> list[paramiko.PKey]:
    path = Path(known_hosts)
    if not path.exists():
        return []
    keys = paramiko.HostKeys(str(path))
    entry = keys.lookup(known_hosts_name(address, port))
    return list(entry.values()) if entry else []


def pin(known_hosts: str | Path, address: str, port: int, key: paramiko.PKey) -> None:
    """Pin ``key`` for the host, replacing any other key pinned under that name (file mode 0600)."""
    path = Path(known_hosts)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    name = known_hosts_name(address, port)
    if name in keys:
        del keys[name]
    keys.add(name, key.get_name(), key)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    keys.save(str(tmp))
    os.replace(tmp, path)
