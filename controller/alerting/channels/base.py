"""The contract of a notification channel: its options (one model per kind) and its sender.

A channel kind is one module with one :class:`ChannelSettings` subclass: ``type: Literal["x"]``,
its own keys next to the common ones below, and ``sender()`` that builds its :class:`Sender`
(reading its secret files through :class:`SecretFiles`). ``send(notification)`` delivers or raises
:class:`DeliveryError`; the outbox (``controller.alerting.dispatcher``) retries.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx

from controller.alerting.secrets import read_secret
from controller.configkit import (
    Bool,
    ConfigModel,
    Duration,
    Expect,
    FilePath,
    Name,
    Names,
    Severity,
    parse_duration,
)
from controller.errors import ConfigError


def parse_wait(value: object) -> float:
    """A duration, or 0 / ``0s`` for none."""
    if value in (0, "0", "0s") and not isinstance(value, bool):
        return 0.0
    return parse_duration(value)


#: a duration or 0 (``group_wait``)
Wait = Annotated[float, Expect("a duration such as 10s, or 0s for none", parse_wait)]


@dataclass(frozen=True)
class Outgoing:
    """One outbox row on its way out."""

    id: int
    incident_id: int
    event: str  # firing, repeat, resolved
    channel: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int


class DeliveryError(Exception):
    """A notification was not delivered. ``retry``: worth trying again later (network, 5xx, 429)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Sender(Protocol):
    name: str

    def send(self, note: Outgoing) -> None: ...

    def secrets(self) -> tuple[str, ...]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SecretFiles:
    """Reads a channel's secret files; errors name ``<path>.<key>`` of the config file."""

    source: str
    path: str  # e.g. notify[0]

    def read(self, file: Path, key: str) -> str:
        return read_secret(file, source=self.source, key=f"{self.path}.{key}")

    def invalid(self, key: str, expected: str, got: str) -> ConfigError:
        """The error for a secret file whose content is not what ``key`` needs (``got`` must not
        be the content)."""
        return ConfigError(self.source, f"{self.path}.{key}", expected, got)


class ChannelSettings(ConfigModel):
    """The keys every channel has. ``name`` defaults to the type, then ``type-2`` …: set it
    explicitly, the outbox keys its rows by it."""

    type: str
    name: Name = ""
    clients: Names | None = None  # None: every client
    min_severity: Severity = "critical"
    repeat_interval: Duration | None = None
    send_resolved: Bool = True
    #: host-level incidents (agent down, unreachable) of one client that fire or resolve within this
    #: long go out as one notification listing the hosts (0: one per host; Alertmanager groups itself)
    group_wait: Wait = 10.0
    timeout: Duration = 10.0
    ca_file: FilePath | None = None

    def build_sender(self, secrets: SecretFiles) -> Sender:
        raise NotImplementedError(f"channel type {self.type!r} has no sender")


def tls_verify(verify: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    """httpx ``verify``: a context trusting ``ca_file`` when given, else the system's (or off)."""
    if not verify:
        return False
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return True


def post_json(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], what: str
) -> httpx.Response:
    """POST; DeliveryError on transport errors (retry) and non-2xx (retry on 408/429/5xx)."""
    try:
        response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 300:
        retry = response.status_code in (408, 425, 429) or response.status_code >= 500
        raise DeliveryError(f"{what}: HTTP {response.status_code}: {response.text[:200]}", retry=retry)
    return response
