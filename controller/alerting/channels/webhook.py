"""Generic webhook: JSON body, signed with HMAC-SHA256 of the exact body bytes.

Headers: ``X-Boxkeeper-Signature: sha256=<hex>`` (when a secret_file is set),
``X-Boxkeeper-Event`` (firing/repeat/resolved) and ``Idempotency-Key`` (also in the body as
``idempotency_key``): a receiver that keeps the keys it has seen drops the rare duplicate that
at-least-once delivery can produce after a crash between send and mark.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Literal

import httpx

from controller.alerting.channels.base import ChannelSettings, Outgoing, SecretFiles, post_json, tls_verify
from controller.alerting.render import body, group, subject
from controller.configkit import Bool, FilePath, SecretUrl
from controller.redact import guard_http_logs, url_secrets

SIGNATURE_HEADER = "X-Boxkeeper-Signature"


def signature(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def webhook_body(note: Outgoing) -> bytes:
    document: dict[str, object] = {
        "version": "boxkeeper.notification/1",
        "idempotency_key": note.idempotency_key,
        "event": note.event,
        "subject": subject(note.payload),
        "text": body(note.payload),
        "incident": note.payload["incident"],
        "created_at": note.payload.get("created_at"),
    }
    if group(note.payload):  # several hosts of one client at once: every incident, one message
        document["incidents"] = group(note.payload)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookChannel(ChannelSettings):
    """``{type: webhook, url: "https://hooks.example/bk", secret_file: /etc/boxkeeper/hook.secret}``"""

    type: Literal["webhook"]
    url: SecretUrl  # a Slack-style webhook URL is itself the credential
    secret_file: FilePath | None = None
    verify_tls: Bool = True

    def build_sender(self, secrets: SecretFiles) -> WebhookSender:
        secret = None if self.secret_file is None else secrets.read(self.secret_file, "secret_file")
        return WebhookSender(self, secret)


class WebhookSender:
    def __init__(self, channel: WebhookChannel, secret: str | None) -> None:
        self.name = channel.name
        self._url = channel.url
        self._secret = secret
        self._url_secrets = url_secrets(channel.url, whole=True)
        guard_http_logs(self._url_secrets)  # httpx logs request URLs, and this one is the key
        verify = tls_verify(channel.verify_tls, channel.ca_file)
        self._client = httpx.Client(timeout=channel.timeout, verify=verify)

    def secrets(self) -> tuple[str, ...]:
        return ((self._secret,) if self._secret else ()) + self._url_secrets

    def send(self, note: Outgoing) -> None:
        data = webhook_body(note)
        headers = {"Idempotency-Key": note.idempotency_key, "X-Boxkeeper-Event": note.event,
                   "User-Agent": "boxkeeper-controller"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, data)
        post_json(self._client, self._url, data, headers, f"webhook {self.name}")

    def close(self) -> None:
        self._client.close()
