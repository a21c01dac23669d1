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

import httpx

from controller.notify.channels.base import Outgoing, post_json, tls_verify
from controller.notify.config import ChannelConfig, WebhookOptions
from controller.notify.render import body, subject

SIGNATURE_HEADER = "X-Boxkeeper-Signature"


def signature(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def webhook_body(note: Outgoing) -> bytes:
    document = {
        "version": "boxkeeper.notification/1",
        "idempotency_key": note.idempotency_key,
        "event": note.event,
        "subject": subject(note.payload),
        "text": body(note.payload),
        "incident": note.payload["incident"],
        "created_at": note.payload.get("created_at"),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSender:
    def __init__(self, channel: ChannelConfig, secret: str | None) -> None:
        assert isinstance(channel.options, WebhookOptions)
        self.name = channel.name
        self._url = channel.options.url
        self._secret = secret
        self._client = httpx.Client(
            timeout=channel.timeout, verify=tls_verify(channel.options.verify_tls, channel.options.ca_file),
        )

    def secrets(self) -> tuple[str, ...]:
        return (self._secret,) if self._secret else ()

    def send(self, note: Outgoing) -> None:
        data = webhook_body(note)
        headers = {"Idempotency-Key": note.idempotency_key, "X-Boxkeeper-Event": note.event,
                   "User-Agent": "boxkeeper-controller"}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, data)
        post_json(self._client, self._url, data, headers, f"webhook {self.name}")

    def close(self) -> None:
        self._client.close()
