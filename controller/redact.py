"""Redaction: the one place that masks secret values in any text that leaves the controller.

A secret (a channel's token, password or credential URL, the database password, a playbook's
secret variable, a value a step captured as secret) is never logged, stored (audit trail, outbox,
timeline) or sent in a notification as it is. :class:`Redactor` replaces every known secret
value, and its shell-quoted form (how it appears in a rendered command), with ``***``; it also
masks Telegram bot tokens inside URLs (``/bot123456:ABC…/sendMessage`` → ``/bot***/sendMessage``)
even when they were never added.

Logs: every value any :class:`Redactor` of the process learns is also added to one process-wide
redactor, :data:`LOG_REDACTOR`, and :func:`install_log_redaction` makes every log record of every
logger (httpx and httpcore, which log request URLs, uvicorn, paramiko … included) pass through it
when it is made: its message, its arguments and its traceback. A record factory, not a filter: a
filter on a logger does not see the records of its children, and one on a handler misses handlers
configured later (uvicorn's).
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
_BOT_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
#: values shorter than this are not masked in logs (a secret variable "1" would mask every digit)
MIN_LOG_SECRET = 4


class Redactor:
    """Replaces known secret values (raw and shell-quoted) and any Telegram bot token with ``***``.

    Every value added is also added to :data:`LOG_REDACTOR` (``log=False`` for that one itself)."""

    def __init__(self, secrets: Iterable[str] = (), *, log: bool = True) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._log = log
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Remember more secrets (empty values are ignored)."""
        found = set(self._secrets)
        for secret in secrets:
            if secret:
                found.update((secret, shlex.quote(secret)))
        with self._lock:  # longest first, so a secret that contains another is masked whole
            self._secrets = tuple(sorted(found, key=len, reverse=True))
        if self._log:
            LOG_REDACTOR.add(*(s for s in secrets if len(s) >= MIN_LOG_SECRET))

    def __call__(self, text: object) -> str:
        result = str(text)
        for secret in self._secrets:
            if secret in result:
                result = result.replace(secret, MASK)
        return _BOT_TOKEN_RE.sub("bot" + MASK, result) if "bot" in result else result

    def __bool__(self) -> bool:
        return bool(self._secrets)


#: the process-wide redactor of log records (see the module docstring)
LOG_REDACTOR = Redactor(log=False)


def url_secrets(url: str, *, whole: bool) -> tuple[str, ...]:
    """The secret parts of a URL: its ``user:password`` (raw, decoded, and as the Basic
    ``Authorization`` value) and password; with ``whole`` (the URL is the credential, e.g. a Slack
    or Bitrix24 incoming webhook) the URL itself and its path too."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,) if whole else ()
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        user, _, password = userinfo.partition(":")
        plain = f"{unquote(user)}:{unquote(password)}"
        found += [userinfo, plain, base64.b64encode(plain.encode()).decode()]
        if password:
            found += [password, unquote(password)]
    if whole:
        found.append(url)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail.strip("/")) >= 8:  # the path of a webhook URL is the credential part
            found.append(tail)
    return tuple(found)


def _clean_arg(value: Any) -> Any:
    if isinstance(value, str):
        return LOG_REDACTOR(value)
    if value is None or isinstance(value, int | float | bool | bytes):
        return value
    text = str(value)
    cleaned = LOG_REDACTOR(text)
    return value if cleaned == text else cleaned


def redact_record(record: logging.LogRecord) -> None:
    """Mask :data:`LOG_REDACTOR`'s secrets in a record: message, arguments, traceback."""
    if isinstance(record.msg, str):
        record.msg = LOG_REDACTOR(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_clean_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _clean_arg(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = LOG_REDACTOR(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = LOG_REDACTOR(record.stack_info)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is handled
        return
    cleaned = LOG_REDACTOR(message)
    if cleaned != message:  # a secret made of several arguments, or inside an object's repr
        record.msg, record.args = cleaned, None


_installed = threading.Lock()
_base_factory: Any = None


def install_log_redaction() -> None:
    """Make every log record of the process go through :data:`LOG_REDACTOR` (idempotent)."""
    global _base_factory
    with _installed:
        if _base_factory is not None:
            return
        _base_factory = logging.getLogRecordFactory()
        base = _base_factory

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record: logging.LogRecord = base(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)


def guard_http_logs(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every log record (httpx/httpcore log request URLs)."""
    LOG_REDACTOR.add(*secrets)
    install_log_redaction()
