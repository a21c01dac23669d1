"""Telegram Bot API: ``POST {api_base}/bot<token>/sendMessage`` (chat_id, text, parse_mode=HTML).

The bot token is part of the URL, so the URL is never logged or put in an error; errors name the
channel and the HTTP status only (and go through the redactor anyway).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import httpx

from controller.alerting.channels.base import (
    ChannelSettings,
    DeliveryError,
    Outgoing,
    SecretFiles,
    tls_verify,
)
from controller.alerting.render import telegram_html
from controller.configkit import Expect, FilePath, Url
from controller.redact import guard_http_logs

DEFAULT_API = "https://api.telegram.org"


def _chat_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError("a chat id")
    return str(value)


class TelegramChannel(ChannelSettings):
    """``{type: telegram, chat_id: "-100123", token_file: /etc/boxkeeper/tg.token}``"""

    type: Literal["telegram"]
    chat_id: Annotated[str, Expect('a chat id such as "-100123" or "@channel"', _chat_id)]
    token_file: Annotated[FilePath, Expect("a file holding the bot token")]
    api_base: Url = DEFAULT_API

    def build_sender(self, secrets: SecretFiles) -> TelegramSender:
        return TelegramSender(self, secrets.read(self.token_file, "token_file"))


class TelegramSender:
    def __init__(self, channel: TelegramChannel, token: str) -> None:
        self.name = channel.name
        self._options = channel
        self._token = token
        guard_http_logs([token])  # httpx logs request URLs, and this one holds the token
        self._client = httpx.Client(
            timeout=channel.timeout, verify=tls_verify(True, channel.ca_file), follow_redirects=False
        )

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def send(self, note: Outgoing) -> None:
        body = {
            "chat_id": self._options.chat_id,
            "text": telegram_html(note.payload),
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        url = f"{self._options.api_base.rstrip('/')}/bot{self._token}/sendMessage"
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"telegram {self.name}: {type(exc).__name__}") from None
        try:
            answer = response.json()
        except json.JSONDecodeError:
            answer = {}
        if response.status_code == 200 and isinstance(answer, dict) and answer.get("ok") is True:
            return
        description = answer.get("description", "") if isinstance(answer, dict) else ""
        retry = response.status_code == 429 or response.status_code >= 500
        raise DeliveryError(
            f"telegram {self.name}: HTTP {response.status_code} {str(description)[:200]}".rstrip(),
            retry=retry,
        )

    def close(self) -> None:
        self._client.close()
