"""Secrets of the notification channels: read from files that only their owner may read; redacted.

A secret is never logged, stored in the outbox, the timeline or an error message. Every text that
leaves a channel (errors included) goes through :class:`Redactor`, which also masks Telegram bot
tokens inside URLs (``/bot123456:ABC…/sendMessage`` → ``/bot***/sendMessage``).
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from controller.errors import ConfigError

MASK = "***"
_BOT_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


def read_secret(path: Path, *, source: str, key: str) -> str:
    """The stripped content of a secret file. ConfigError when missing, empty or world-readable."""
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(source, key, "a readable secret file", f"{path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            source, key, f"a file not readable by others (chmod 600 {path})", f"mode {stat.filemode(mode)}"
        )
    if not value:
        raise ConfigError(source, key, "a non-empty secret file", str(path))
    return value


class Redactor:
    """Replaces known secret values (and any Telegram bot token) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({*self._secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def __call__(self, message: object) -> str:
        result = str(message)
        for secret in self._secrets:
            result = result.replace(secret, MASK)
        return _BOT_TOKEN_RE.sub("bot" + MASK, result)


class RedactingFilter(logging.Filter):
    """Masks secrets in records of third-party loggers (httpx logs every request URL at INFO,
    and a Telegram URL carries the bot token)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redactor(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_HTTP_LOG_GUARD = RedactingFilter(Redactor())


def guard_http_logs(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in the httpx/httpcore loggers' records (one shared filter, installed once)."""
    _HTTP_LOG_GUARD.redactor.add(secrets)
    for name in ("httpx", "httpcore.http11", "httpcore.connection"):
        logger = logging.getLogger(name)
        if _HTTP_LOG_GUARD not in logger.filters:
            logger.addFilter(_HTTP_LOG_GUARD)
