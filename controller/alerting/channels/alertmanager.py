"""Alertmanager API v2: ``POST {url}/api/v2/alerts`` with one alert per notification.

Labels: ``alertname`` (``Boxkeeper`` + cause, e.g. ``BoxkeeperUnreachable``), ``client``, ``host``,
``severity``, ``cause``, ``incident_id``, ``dedup_key``; annotations ``summary`` and ``description``.
Firing alerts are re-sent every ``repeat_interval`` (default 1m) without ``endsAt`` — Alertmanager
resolves an alert by itself when it is not re-sent within its ``resolve_timeout`` (default 5m) —
and a resolved incident is sent once more with ``endsAt`` = the resolve time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from controller.alerting.channels.base import ChannelSettings, Outgoing, SecretFiles, post_json, tls_verify
from controller.alerting.render import body
from controller.configkit import Bool, Duration, SecretUrl, Url
from controller.redact import guard_http_logs, url_secrets


def _rfc3339(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def alertname(cause: str) -> str:
    return "Boxkeeper" + "".join(part.capitalize() for part in cause.replace("-", "_").split("_"))


def alert(note: Outgoing, generator_url: str | None = None) -> dict[str, Any]:
    incident = note.payload["incident"]
    labels = {
        "alertname": alertname(str(incident["cause"])),
        "client": str(incident.get("client") or ""),
        "host": str(incident.get("host") or ""),
        "severity": str(incident["severity"]),
        "cause": str(incident["cause"]),
        "incident_id": str(incident["id"]),
        "dedup_key": str(incident["key"]),
    }
    result: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {"summary": str(incident["summary"]), "description": body(note.payload)},
        "startsAt": _rfc3339(float(incident["opened_at"])),
    }
    if note.event == "resolved":
        result["endsAt"] = _rfc3339(float(incident.get("resolved_at") or note.payload["created_at"]))
    if generator_url:
        result["generatorURL"] = generator_url
    return result


class AlertmanagerChannel(ChannelSettings):
    """``{type: alertmanager, url: "http://127.0.0.1:9093"}``: re-sent every ``repeat_interval``."""

    type: Literal["alertmanager"]
    url: SecretUrl  # may hold basic auth: http://user:password@host:9093
    verify_tls: Bool = True
    generator_url: Url | None = None
    repeat_interval: Duration | None = 60.0

    def build_sender(self, secrets: SecretFiles) -> AlertmanagerSender:
        return AlertmanagerSender(self)


class AlertmanagerSender:
    def __init__(self, channel: AlertmanagerChannel) -> None:
        self.name = channel.name
        self._options = channel
        self._url_secrets = url_secrets(channel.url, whole=False)
        guard_http_logs(self._url_secrets)  # httpx logs request URLs
        verify = tls_verify(channel.verify_tls, channel.ca_file)
        self._client = httpx.Client(timeout=channel.timeout, verify=verify)

    def secrets(self) -> tuple[str, ...]:
        return self._url_secrets

    def send(self, note: Outgoing) -> None:
        data = json.dumps([alert(note, self._options.generator_url)]).encode()
        post_json(self._client, f"{self._options.url.rstrip('/')}/api/v2/alerts", data,
                  {"Idempotency-Key": note.idempotency_key}, f"alertmanager {self.name}")

    def close(self) -> None:
        self._client.close()
