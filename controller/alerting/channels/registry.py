"""The notification channel kinds: one line per kind. The ``notify:`` section is read through this
list (its ``type`` picks the model) and the senders are built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.alerting.channels.alertmanager import AlertmanagerChannel
from controller.alerting.channels.base import ChannelSettings, SecretFiles, Sender
from controller.alerting.channels.bitrix24 import Bitrix24Channel
from controller.alerting.channels.email import EmailChannel
from controller.alerting.channels.telegram import TelegramChannel
from controller.alerting.channels.webhook import WebhookChannel
from controller.configkit import Invalid, one_of

CHANNELS: tuple[type[ChannelSettings], ...] = (
    TelegramChannel,
    EmailChannel,
    WebhookChannel,
    AlertmanagerChannel,
    Bitrix24Channel,
)

if TYPE_CHECKING:
    AnyChannel = ChannelSettings
else:
    AnyChannel = one_of(CHANNELS)


def build_senders(channels: tuple[ChannelSettings, ...], *, source: str = "<config>",
                  path: str = "notify") -> dict[str, Sender]:
    """channel name → sender, for every configured channel (reads the secret files now)."""
    return {c.name: c.build_sender(SecretFiles(source, f"{path}[{i}]")) for i, c in enumerate(channels)}


def named(channels: tuple[ChannelSettings, ...]) -> tuple[ChannelSettings, ...]:
    """The channels with their default names filled in (the type, then ``type-2`` …); a name
    given twice is refused (the outbox keys its rows by it)."""
    counts: dict[str, int] = {}
    result: list[ChannelSettings] = []
    for i, channel in enumerate(channels):
        counts[channel.type] = counts.get(channel.type, 0) + 1
        if not channel.name:
            n = counts[channel.type]
            channel = channel.model_copy(update={"name": channel.type if n == 1 else f"{channel.type}-{n}"})
        if any(c.name == channel.name for c in result):
            raise Invalid(f"[{i}].name", "a unique channel name", channel.name)
        result.append(channel)
    return tuple(result)
