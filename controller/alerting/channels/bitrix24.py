"""Bitrix24 chat: ``im.message.add`` through a portal's incoming webhook.

An incoming webhook (Applications → Developer resources → Other → Incoming webhook, scope ``im``)
is a URL ``https://<portal>/rest/<user id>/<code>/``: whoever has it acts as that user, so the URL
is the credential. It is read from a file (``webhook_file``), never from the config, and masked in
every log line (httpx's own included), outbox error and timeline entry.

The call: ``POST <webhook>im.message.add.json`` with a JSON body ``DIALOG_ID`` (``chat<N>`` a group
chat, ``sg<N>`` a workgroup's chat, ``<N>`` a user's private chat), ``MESSAGE`` (BB-code formatted:
``[b]``, ``[URL=…]…[/URL]``, ``[BR]``), ``URL_PREVIEW: "N"``. The portal answers ``{"result": <message
id>, "time": {…}}``; a refusal is ``{"error": CODE, "error_description": …}`` with an HTTP status:
429/5xx (``QUERY_LIMIT_EXCEEDED`` is 503) are retried by the outbox, 400/401/403/404 are final.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import httpx

from controller.alerting.channels.base import (
    ChannelSettings,
    DeliveryError,
    Outgoing,
    SecretFiles,
    tls_verify,
)
from controller.alerting.render import HEADLINES, group, group_lines, lasted, opened, subject, where
from controller.configkit import Bool, Expect, FilePath, Text
from controller.redact import guard_http_logs

DIALOG_ID = re.compile(r"(chat|sg)?[1-9]\d*")
WEBHOOK = re.compile(r"https?://[^/\s]+(/[^\s]*)?/rest/\d+/[^/\s]+/?")
MAX_MESSAGE = 4000


def _dialog_id(value: object) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not DIALOG_ID.fullmatch(text):
        raise ValueError("a dialog id")
    return text


def _link(value: object) -> str:
    if not isinstance(value, str) or "{id}" not in value or not value.startswith(("http://", "https://")):
        raise ValueError("a link")
    return value


class Bitrix24Channel(ChannelSettings):
    """``{type: bitrix24, dialog_id: chat42, webhook_file: /etc/boxkeeper/b24.webhook,
    incident_link: "https://boxkeeper.example/ui/incidents/{id}"}``"""

    type: Literal["bitrix24"]
    dialog_id: Annotated[str, Expect('a Bitrix24 dialog id: "chat42" (group chat), "sg7" (workgroup) '
                                     'or a user id such as "1"', _dialog_id)]
    webhook_file: Annotated[FilePath, Expect("a file holding the incoming webhook URL "
                                             "(https://portal/rest/<user>/<code>/)")]
    incident_link: Annotated[str, Expect('a URL with {id}, e.g. "https://bk.example/ui/incidents/{id}"',
                                         _link)] | None = None
    verify_tls: Bool = True
    title: Text = "boxkeeper"

    def build_sender(self, secrets: SecretFiles) -> Bitrix24Sender:
        url = secrets.read(self.webhook_file, "webhook_file").strip()
        if not WEBHOOK.fullmatch(url):
            # never echo the file's content: it is the credential
            raise secrets.invalid("webhook_file", "a file holding a URL such as "
                                  "https://portal.example/rest/1/abc123/", "(its content, not shown)")
        return Bitrix24Sender(self, url.rstrip("/") + "/")


def message(payload: dict[str, Any], link: str | None, title: str) -> str:
    """The BB-code text of one notification."""
    if group(payload):
        text = "[BR]".join([f"[b]{title}: {subject(payload)}[/b]",
                            *(line.replace("\n", " ") for line in group_lines(payload))])
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"
    incident = payload["incident"]
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    lines = [f"[b]{title}: [{head}] {incident['severity']}[/b] {where(incident)}",
             str(incident["summary"]),
             f"#{incident['id']} {incident['key']} · opened {opened(incident)}"]
    if payload["event"] == "resolved":
        lines.append(f"resolved after {lasted(incident)}")
    if link:
        lines.append(f"[URL={link.replace('{id}', str(incident['id']))}]incident #{incident['id']}[/URL]")
    text = "[BR]".join(line.replace("\n", " ") for line in lines)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


class Bitrix24Sender:
    def __init__(self, channel: Bitrix24Channel, webhook: str) -> None:
        self.name = channel.name
        self._options = channel
        self._webhook = webhook
        self._code = webhook.rstrip("/").rsplit("/", 1)[-1]
        guard_http_logs([webhook, self._code])  # httpx logs request URLs, and this one is the key
        self._client = httpx.Client(timeout=channel.timeout, verify=tls_verify(channel.verify_tls,
                                                                                 channel.ca_file),
                                    follow_redirects=False)

    def secrets(self) -> tuple[str, ...]:
        return (self._webhook, self._code)

    def send(self, note: Outgoing) -> None:
        body = {"DIALOG_ID": self._options.dialog_id,
                "MESSAGE": message(note.payload, self._options.incident_link, self._options.title),
                "URL_PREVIEW": "N"}
        try:
            response = self._client.post(self._webhook + "im.message.add.json", json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"bitrix24 {self.name}: {type(exc).__name__}") from None
        try:
            answer = response.json()
        except json.JSONDecodeError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict) and isinstance(answer.get("result"), int):
            return
        error = ""
        if isinstance(answer, dict):
            error = f"{answer.get('error', '')}: {answer.get('error_description', '')}".strip(": ")
        retry = response.status_code in (408, 429) or response.status_code >= 500
        raise DeliveryError(f"bitrix24 {self.name}: HTTP {response.status_code} {error[:200]}".rstrip(),
                            retry=retry)

    def close(self) -> None:
        self._client.close()
