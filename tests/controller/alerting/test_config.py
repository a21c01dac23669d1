"""The notify and maintenance sections of the controller config, secret files and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.alerting.channels.alertmanager import AlertmanagerChannel
from controller.alerting.channels.base import ChannelSettings
from controller.alerting.channels.email import EmailChannel
from controller.alerting.channels.registry import build_senders
from controller.alerting.channels.telegram import TelegramChannel
from controller.alerting.maintenance import MaintenanceWindow, active_window, is_active
from controller.alerting.secrets import read_secret
from controller.config import parse
from controller.errors import ConfigError
from controller.redact import Redactor


def parse_channels(source: str, raw: object) -> tuple[ChannelSettings, ...]:
    return parse({"notify": raw}, source).notify


def parse_maintenance(source: str, raw: object) -> tuple[MaintenanceWindow, ...]:
    return parse({"maintenance": raw}, source).maintenance


def test_channels_parse_with_defaults() -> None:
    tg, mail, am = parse_channels(
        "c.yaml",
        [
            {"type": "telegram", "chat_id": -100123, "token_file": "/etc/bk/tg", "clients": ["acme"]},
            {
                "type": "email",
                "smtp": "smtp.example.com:587",
                "from": "bk@example.com",
                "to": "ops@example.com",
                "min_severity": "warning",
            },
            {"type": "alertmanager", "url": "http://127.0.0.1:9093/"},
        ],
    )
    assert tg.name == "telegram" and tg.clients == ("acme",) and tg.min_severity == "critical"
    assert isinstance(tg, TelegramChannel) and tg.chat_id == "-100123"
    assert tg.api_base == "https://api.telegram.org" and tg.send_resolved and tg.repeat_interval is None
    assert isinstance(mail, EmailChannel) and mail.use_starttls and mail.smtp_port == 587
    assert mail.recipients == ("ops@example.com",)
    assert isinstance(am, AlertmanagerChannel) and am.url == "http://127.0.0.1:9093/"
    assert am.repeat_interval == 60.0
    assert parse_channels("c.yaml", None) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"type": "pager"},
            r"c.yaml: notify\[0\].type: expected one of telegram, email, webhook, alertmanager",
        ),
        ({"type": "webhook"}, r"notify\[0\].url: expected an http:// or https:// URL \(required\)"),
        (
            {"type": "webhook", "url": "ftp://x"},
            # the value is not echoed: a webhook URL may be the credential
            r"notify\[0\].url: expected an http:// or https:// URL, got a value not shown here",
        ),
        (
            {"type": "webhook", "url": "http://x", "min_severity": "high"},
            r"min_severity: expected one of critical",
        ),
        ({"type": "webhook", "url": "http://x", "repeat": "1m"}, r"notify\[0\].repeat: expected no such key"),
        (
            {"type": "email", "smtp": "mx:25", "from": "a@b", "to": ["c@d"], "username": "u"},
            r"password_file: expected username and password_file together",
        ),
    ],
)
def test_channel_errors_name_file_key_and_expectation(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_channels("c.yaml", [raw])


def test_channel_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match=r"notify\[1\].name: expected a unique channel name"):
        parse_channels(
            "c.yaml",
            [
                {"type": "webhook", "url": "http://a", "name": "x"},
                {"type": "webhook", "url": "http://b", "name": "x"},
            ],
        )


def test_secret_files_must_not_be_world_readable(tmp_path: Path) -> None:
    token = tmp_path / "tg.token"
    token.write_text("123456:secret-token\n")
    token.chmod(0o644)
    [channel] = parse_channels("c.yaml", [{"type": "telegram", "chat_id": "1", "token_file": str(token)}])
    with pytest.raises(ConfigError, match=r"notify\[0\].token_file: expected a file not readable by others"):
        build_senders((channel,), source="c.yaml")
    token.chmod(0o600)
    assert read_secret(token, source="c.yaml", key="k") == "123456:secret-token"
    with pytest.raises(ConfigError, match="expected a readable secret file"):
        read_secret(tmp_path / "missing", source="c.yaml", key="k")


def test_redactor_masks_secrets_and_bot_tokens_in_urls() -> None:
    redact = Redactor(["hunter2"])
    text = "POST https://api.telegram.org/bot123456:AAH-x_y/sendMessage failed; password hunter2"
    assert redact(text) == "POST https://api.telegram.org/bot***/sendMessage failed; password ***"


def test_maintenance_windows_cron_and_one_off_in_their_time_zone() -> None:
    nightly, once = parse_maintenance(
        "c.yaml",
        [
            {
                "name": "nightly",
                "clients": ["acme"],
                "cron": "0 3 * * 6",
                "duration": "2h",
                "timezone": "Europe/Moscow",
            },
            {
                "hosts": ["portal-01"],
                "start": "2026-12-01 22:00",
                "duration": "4h",
                "timezone": "Asia/Yekaterinburg",
            },
        ],
    )
    saturday_0330_msk = 1764376200.0  # 2025-11-29 03:30 +03:00 (a Saturday)
    assert is_active(nightly, saturday_0330_msk)
    assert not is_active(nightly, saturday_0330_msk + 2 * 3600)  # 05:30, after the 2 h
    assert not is_active(nightly, saturday_0330_msk - 3600)  # 02:30
    assert not is_active(nightly, saturday_0330_msk + 86400)  # Sunday
    assert once.name == "window-2" and once.ends_at is not None and once.starts_at is not None
    assert (
        once.ends_at - once.starts_at == 4 * 3600 and once.starts_at == 1796144400.0
    )  # 2026-12-01 22:00 +05:00 = 17:00 UTC
    assert active_window((nightly, once), client="acme", host="box-9", now=saturday_0330_msk) is nightly
    assert active_window((nightly, once), client="globex", host="box-9", now=saturday_0330_msk) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cron": "0 3 * *", "duration": "1h"}, r"maintenance\[0\].cron: expected a cron expression"),
        (
            {"cron": "0 3 * * 6"},
            r"maintenance\[0\].duration: expected a duration such as 2h \(required with cron\)",
        ),
        ({"start": "2026-12-01 22:00"}, r"maintenance\[0\].end: expected an end time or a duration"),
        (
            {"start": "2026-12-01 22:00", "end": "2026-12-01 21:00"},
            r"maintenance\[0\].end: expected a time after start",
        ),
        (
            {"cron": "0 3 * * 6", "duration": "1h", "timezone": "Mars/Olympus"},
            r"timezone: expected an IANA time zone",
        ),
    ],
)
def test_maintenance_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_maintenance("c.yaml", [raw])
