"""The ``notify:`` and ``maintenance:`` sections of the controller config → frozen values (pure).

``notify`` is a list of channels::

    notify:
      - {type: telegram, chat_id: "-100123", token_file: /etc/boxkeeper/tg.token, clients: [acme]}
      - {type: email, smtp: "smtp.example.com:587", from: bk@example.com, to: [ops@example.com],
         username: bk, password_file: /etc/boxkeeper/smtp.password, min_severity: warning}
      - {type: webhook, url: "https://hooks.example/bk", secret_file: /etc/boxkeeper/hook.secret}
      - {type: alertmanager, url: "http://127.0.0.1:9093", repeat_interval: 1m}

Common keys: ``name`` (default: the type, then ``type-2`` … — set it explicitly, the outbox keys
rows by it), ``clients`` (default: all), ``min_severity`` (default ``critical``),
``repeat_interval`` (default none; ``1m`` for alertmanager), ``send_resolved`` (default true),
``timeout`` (default 10s).

``maintenance`` is a list of windows that mute notifications (incidents are still recorded)::

    maintenance:
      - {name: nightly, clients: [acme], cron: "0 3 * * 6", duration: 2h, timezone: Europe/Moscow}
      - {hosts: [portal-01], start: "2026-12-01 22:00", end: "2026-12-02 02:00", timezone: Europe/Moscow}

Secret files are only named here; they are read (and their permissions checked) when the channel
is built (:mod:`controller.notify.secrets`), so parsing stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from controller.configkit import (
    Reader,
    address,
    boolean,
    duration,
    severity,
    text,
    text_list,
    timezone,
    url,
)
from controller.errors import ConfigError

ChannelType = Literal["telegram", "email", "webhook", "alertmanager"]
CHANNEL_TYPES: tuple[str, ...] = ("telegram", "email", "webhook", "alertmanager")
DEFAULT_TELEGRAM_API = "https://api.telegram.org"


@dataclass(frozen=True)
class TelegramOptions:
    chat_id: str
    token_file: Path
    api_base: str = DEFAULT_TELEGRAM_API
    ca_file: Path | None = None


@dataclass(frozen=True)
class EmailOptions:
    smtp_host: str
    smtp_port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    secret_file: Path | None = None
    verify_tls: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True)
class AlertmanagerOptions:
    url: str
    verify_tls: bool = True
    ca_file: Path | None = None
    generator_url: str | None = None


ChannelOptions = TelegramOptions | EmailOptions | WebhookOptions | AlertmanagerOptions


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    type: ChannelType
    options: ChannelOptions
    clients: tuple[str, ...] | None = None  # None: every client
    min_severity: str = "critical"
    repeat_interval: float | None = None
    send_resolved: bool = True
    timeout: float = 10.0
    source: str = "<config>"
    path: str = "notify[0]"  # key path, for errors found when the channel is built


@dataclass(frozen=True)
class MaintenanceWindow:
    """Either recurring (``cron`` + ``duration``) or one-off (``start`` … ``end``), in ``timezone``."""

    name: str
    timezone: str
    clients: tuple[str, ...] | None = None  # None (and hosts None): every host
    hosts: tuple[str, ...] | None = None
    cron: str | None = None
    duration: float | None = None
    start: float | None = None  # unix seconds
    end: float | None = None


def _path(value: object) -> Path:
    return Path(text(value))


def _chat_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValueError("a chat id such as \"-100123\" or \"@channel\"")
    return str(value)


def _options(r: Reader, kind: str) -> ChannelOptions:
    ca_file = r.get("ca_file", _path)
    if kind == "telegram":
        return TelegramOptions(
            chat_id=r.need("chat_id", _chat_id, "a chat id"),
            token_file=r.need("token_file", _path, "a file holding the bot token"),
            api_base=r.value("api_base", url, DEFAULT_TELEGRAM_API),
            ca_file=ca_file,
        )
    if kind == "email":
        host, port = r.need("smtp", address, "an SMTP address such as smtp.example.com:587")
        username = r.get("username", text)
        password_file = r.get("password_file", _path)
        if (username is None) != (password_file is None):
            raise ConfigError(r.source, r.key("password_file"), "username and password_file together")
        ssl = r.value("ssl", boolean, False)
        starttls = r.value("starttls", boolean, not ssl)
        if ssl and starttls:
            raise ConfigError(r.source, r.key("starttls"), "false when ssl (implicit TLS) is true", True)
        return EmailOptions(
            smtp_host=host, smtp_port=port,
            sender=r.need("from", text, "a sender address"),
            recipients=r.need("to", text_list, "a list of recipient addresses"),
            starttls=starttls, ssl=ssl, username=username, password_file=password_file, ca_file=ca_file,
        )
    if kind == "webhook":
        return WebhookOptions(
            url=r.need("url", url, "an http:// or https:// URL"),
            secret_file=r.get("secret_file", _path),
            verify_tls=r.value("verify_tls", boolean, True),
            ca_file=ca_file,
        )
    return AlertmanagerOptions(
        url=r.need("url", url, "the Alertmanager base URL, e.g. http://127.0.0.1:9093"),
        verify_tls=r.value("verify_tls", boolean, True),
        ca_file=ca_file,
        generator_url=r.get("generator_url", url),
    )


def parse_channels(source: str, raw: object, path: str = "notify") -> tuple[ChannelConfig, ...]:
    """Validate the ``notify`` list (None → no channels)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(source, path, "a list of channels", raw)
    channels: list[ChannelConfig] = []
    counts: dict[str, int] = {}
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        r = Reader.of(source, item, item_path, "a mapping with at least a type")
        kind = r.need("type", text, "one of " + ", ".join(CHANNEL_TYPES))
        if kind not in CHANNEL_TYPES:
            raise ConfigError(source, r.key("type"), "one of " + ", ".join(CHANNEL_TYPES), kind)
        counts[kind] = counts.get(kind, 0) + 1
        default_name = kind if counts[kind] == 1 else f"{kind}-{counts[kind]}"
        default_repeat = 60.0 if kind == "alertmanager" else None
        channel = ChannelConfig(
            name=r.value("name", text, default_name),
            type=kind,  # type: ignore[arg-type]  # checked against CHANNEL_TYPES above
            options=_options(r, kind),
            clients=r.get("clients", text_list),
            min_severity=r.value("min_severity", severity, "critical"),
            repeat_interval=r.get("repeat_interval", duration, default_repeat),
            send_resolved=r.value("send_resolved", boolean, True),
            timeout=r.value("timeout", duration, 10.0),
            source=source,
            path=item_path,
        )
        r.reject_unknown()
        if any(c.name == channel.name for c in channels):
            raise ConfigError(source, r.key("name"), "a unique channel name", channel.name)
        channels.append(channel)
    return tuple(channels)


def _cron(value: object) -> str:
    from controller.notify.maintenance import cron_trigger  # maintenance imports this module
    expr = text(value)
    try:
        cron_trigger(expr, "UTC")
    except ValueError:
        raise ValueError("a cron expression with 5 fields, e.g. \"0 3 * * 6\"") from None
    return expr


def _local_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(text(value))
    except ValueError:
        raise ValueError("a date and time such as \"2026-12-01 22:00\"") from None


def _stamp(moment: datetime, zone: str) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.timestamp()


def parse_maintenance(source: str, raw: object, path: str = "maintenance") -> tuple[MaintenanceWindow, ...]:
    """Validate the ``maintenance`` list (None → no windows)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(source, path, "a list of maintenance windows", raw)
    windows: list[MaintenanceWindow] = []
    for i, item in enumerate(raw):
        item_path = f"{path}[{i}]"
        r = Reader.of(source, item, item_path, "a mapping with cron+duration or start+end")
        zone = r.value("timezone", timezone, "UTC")
        cron = r.get("cron", _cron)
        span = r.get("duration", duration)
        start = r.get("start", _local_time)
        end = r.get("end", _local_time)
        window = MaintenanceWindow(
            name=r.value("name", text, f"window-{i + 1}"),
            timezone=zone,
            clients=r.get("clients", text_list),
            hosts=r.get("hosts", text_list),
            cron=cron,
            duration=span,
            start=None if start is None else _stamp(start, zone),
            end=None if end is None else _stamp(end, zone),
        )
        r.reject_unknown()
        if cron is not None:
            if span is None:
                raise ConfigError(source, r.key("duration"), "a duration such as 2h (required with cron)")
            if start is not None or end is not None:
                raise ConfigError(source, r.key("start"), "either cron+duration or start+end, not both")
        elif start is None:
            raise ConfigError(source, item_path, "cron+duration or start (+end or duration)")
        elif end is None and span is None:
            raise ConfigError(source, r.key("end"), "an end time or a duration (required with start)")
        elif end is not None and span is not None:
            raise ConfigError(source, r.key("duration"), "either end or duration with start, not both")
        if window.start is not None and window.end is None and span is not None:
            window = MaintenanceWindow(**{**window.__dict__, "end": window.start + span})
        if window.start is not None and window.end is not None and window.end <= window.start:
            raise ConfigError(source, r.key("end"), "a time after start", r.data.get("end"))
        windows.append(window)
    return tuple(windows)
