"""Redaction: the one place that masks secret values in any text that leaves the controller.

A secret (a channel's token or password, a playbook's secret variable, a value a step captured as
secret) is never logged, stored (audit trail, outbox, timeline) or sent in a notification as it
is. :class:`Redactor` replaces every known secret value, and its shell-quoted form (how it appears
in a rendered command), with ``***``; it also masks Telegram bot tokens inside URLs
(``/bot123456:ABC…/sendMessage`` → ``/bot***/sendMessage``) even when they were never added.
:class:`RedactingFilter` applies one to the records of a logger (httpx logs request URLs).
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
from collections.abc import Iterable

MASK = "***"
_BOT_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


class Redactor:
    """Replaces known secret values (raw and shell-quoted) and any Telegram bot token with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Remember more secrets (empty values are ignored)."""
        found = set(self._secrets)
        for secret in secrets:
            if secret:
                found.update((secret, shlex.quote(secret)))
        with self._lock:  # longest first, so a secret that contains another is masked whole
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def __call__(self, text: object) -> str:
        result = str(text)
        for secret in self._secrets:
            result = result.replace(secret, MASK)
        return _BOT_TOKEN_RE.sub("bot" + MASK, result)

    def __bool__(self) -> bool:
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """Masks secrets in the records of a logger (third-party ones included)."""

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
    _HTTP_LOG_GUARD.redactor.add(*secrets)
    for name in ("httpx", "httpcore.http11", "httpcore.connection"):
        logger = logging.getLogger(name)
        if _HTTP_LOG_GUARD not in logger.filters:
            logger.addFilter(_HTTP_LOG_GUARD)
