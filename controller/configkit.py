"""Small pure helpers shared by the controller's config parsers (top level, ``notify``,
``maintenance``, ``detection``).

They walk a raw (YAML-decoded) mapping and keep the key path, so that every error names the file,
the key path and what was expected::

    controller.yaml: notify[1].min_severity: expected one of critical, warning, info, got 'high'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config import parse_duration
from controller.errors import ConfigError

T = TypeVar("T")

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

#: ``15s``, ``5m``, ``2h``, ``1d``, ``500ms`` or a number of seconds → seconds (> 0): the agent's
#: syntax, so one config language covers both.
duration = parse_duration


def severity_rank(severity: str) -> int:
    """Order of severities: info < warning < critical (unknown names rank lowest)."""
    return _SEVERITY_RANK.get(severity, -1)


def text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def timezone(value: object) -> str:
    """An IANA time zone name that this machine's tz database knows."""
    name = text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone such as Europe/Moscow") from None
    return name


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("an integer of 1 or more")
    return value


def positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError("a number greater than zero")
    return float(value)


def severity(value: object) -> str:
    if value not in SEVERITIES:
        raise ValueError("one of " + ", ".join(SEVERITIES))
    return str(value)


def text_list(value: object) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError("a non-empty list of names, e.g. [acme, globex]")
    return tuple(items)


def url(value: object) -> str:
    result = text(value)
    if not re.match(r"^https?://[^/\s]+", result):
        raise ValueError("an http:// or https:// URL")
    return result.rstrip("/")


def address(value: object) -> tuple[str, int]:
    """``smtp.example:587``, ``127.0.0.1:25`` or ``[::1]:25`` → (host, port)."""
    raw = str(value).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", raw)
    if not m or not 0 < int(m.group(2) or m.group(4)) < 65536:
        raise ValueError("an address such as smtp.example.com:587")
    return (m.group(1) or m.group(3)), int(m.group(2) or m.group(4))


class Reader:
    """Reads keys of one mapping; remembers which were used so unknown keys can be refused."""

    def __init__(self, source: str, data: Mapping[str, Any], path: str) -> None:
        self.source = source
        self.data = data
        self.path = path
        self.used: set[str] = set()

    @classmethod
    def of(cls, source: str, raw: object, path: str, expected: str) -> Reader:
        if not isinstance(raw, Mapping):
            raise ConfigError(source, path, expected, raw)
        return cls(source, raw, path)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def get(self, name: str, parse: Callable[[object], T], default: T | None = None) -> T | None:
        """The parsed value, or ``default`` when the key is absent or null."""
        self.used.add(name)
        if self.data.get(name) is None:
            return default
        raw = self.data[name]
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.source, self.key(name), str(exc) or "a valid value", raw) from None

    def need(self, name: str, parse: Callable[[object], T], expected: str) -> T:
        """The parsed value of a required key."""
        value = self.get(name, parse)
        if value is None:
            raise ConfigError(self.source, self.key(name), expected + " (required)")
        return value

    def value(self, name: str, parse: Callable[[object], T], default: T) -> T:
        """The parsed value, or ``default`` (never None)."""
        result = self.get(name, parse)
        return default if result is None else result

    def reject_unknown(self) -> None:
        for name in self.data:
            if name not in self.used:
                expected = "one of " + ", ".join(sorted(self.used))
                raise ConfigError(self.source, self.key(str(name)), f"no such key; expected {expected}")
