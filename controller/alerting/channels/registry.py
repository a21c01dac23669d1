"""Build the senders of the configured channels, reading their secret files (ConfigError if unusable)."""

from __future__ import annotations

from controller.notify.channels.alertmanager import AlertmanagerSender
from controller.notify.channels.base import Sender
from controller.notify.channels.email import EmailSender
from controller.notify.channels.telegram import TelegramSender
from controller.notify.channels.webhook import WebhookSender
from controller.notify.config import (
    AlertmanagerOptions,
    ChannelConfig,
    EmailOptions,
    TelegramOptions,
    WebhookOptions,
)
from controller.notify.secrets import read_secret


def build_sender(channel: ChannelConfig) -> Sender:
    o = channel.options
    key = channel.path
    if isinstance(o, TelegramOptions):
        token = read_secret(o.token_file, source=channel.source, key=f"{key}.token_file")
        return TelegramSender(channel, token)
    if isinstance(o, EmailOptions):
        password = None
        if o.password_file is not None:
            password = read_secret(o.password_file, source=channel.source, key=f"{key}.password_file")
        return EmailSender(channel, password)
    if isinstance(o, WebhookOptions):
        secret = None
        if o.secret_file is not None:
            secret = read_secret(o.secret_file, source=channel.source, key=f"{key}.secret_file")
        return WebhookSender(channel, secret)
    assert isinstance(o, AlertmanagerOptions)
    return AlertmanagerSender(channel)


def build_senders(channels: tuple[ChannelConfig, ...]) -> dict[str, Sender]:
    """channel name → sender, for every configured channel."""
    return {channel.name: build_sender(channel) for channel in channels}
