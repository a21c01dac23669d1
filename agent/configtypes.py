"""The value types of the agent's config: what a key holds, parsed from what YAML gives.

Each type is a subclass of the Python value it holds (a :class:`Duration` is a float of seconds, a
:class:`Size` an int of bytes, an :class:`Address` a ``(host, port)`` tuple ...), so code reads it
as that value. Each has ``expected``, the words an error message uses for it, and ``parse(value)``,
which raises ValueError with those words or more exact ones ("a duration greater than zero").

The config's structs (msgspec) declare their keys with these types; msgspec hands every type it
does not know itself to :func:`dec_hook`, which calls the type's ``parse``, and reports the
ValueError's text with the key path (:mod:`agent.validation` turns that into a ConfigError).
A spec built in code (tests, the bench) is not parsed: pass the values themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Optional

from agent.httpwire import is_one_line, is_token

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, None: 1,
}


# -- the parsers (pure; ValueError says what was expected) ------------------------------------------


def parse_duration(value: object) -> float:
    """``15s``, ``5m``, ``26h``, ``1d``, ``500ms`` or a number of seconds → seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError(Duration.expected)
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(Duration.expected)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(Duration.expected)
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a duration greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """``64MiB``, ``1GB``, ``512`` (bytes) → bytes (>= 0)."""
    if isinstance(value, bool):
        raise ValueError(Size.expected)
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ValueError(Size.expected)
        unit = m.group(2).lower() if m.group(2) else None
        size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size < 0:
        raise ValueError("a size of zero or more")
    return size


def parse_percent(value: object) -> float:
    """``85%`` or ``85`` → 85.0 (0..100)."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+(\.\d+)?%?", text, re.ASCII):
        raise ValueError(Percent.expected)
    pct = float(text.rstrip("%"))
    if not 0 <= pct <= 100:
        raise ValueError("a percentage between 0% and 100%")
    return pct


def parse_address(value: object, default_host: Optional[str] = None) -> tuple[str, int]:
    """``127.0.0.1:9847``, ``[::1]:9847`` or ``:9847`` → (host, port)."""
    text = str(value).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]*):(\d+)", text, re.ASCII)
    if not m:
        raise ValueError(Address.expected)
    host = m.group(1) or m.group(3) or default_host
    port = int(m.group(2) or m.group(4))
    if not host or not 0 < port < 65536:
        raise ValueError(f"{Address.expected} (port 1-65535)")
    return host, port


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an integer")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(Text.expected)
    return value


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(Env.expected)
    return {str(k): str(v) for k, v in value.items()}


# -- the types --------------------------------------------------------------------------------------


class Duration(float):
    """Seconds (> 0), written ``10s``, ``5m``, ``26h``, ``1d``, ``500ms`` or as a number."""

    expected: ClassVar[str] = "a duration such as 10s, 5m or 1h"

    @classmethod
    def parse(cls, value: object) -> Duration:
        return cls(parse_duration(value))


class Size(int):
    """Bytes (>= 0), written ``512KiB``, ``64MiB``, ``1GB`` or as a number."""

    expected: ClassVar[str] = "a size such as 512KiB, 64MiB or 1GB"

    @classmethod
    def parse(cls, value: object) -> Size:
        return cls(parse_size(value))


class Percent(float):
    """0..100, written ``85%`` or ``85``."""

    expected: ClassVar[str] = "a percentage such as 85%"

    @classmethod
    def parse(cls, value: object) -> Percent:
        return cls(parse_percent(value))


class Count(int):
    """An integer of 0 or more (a number of processes, files, days)."""

    expected: ClassVar[str] = "an integer of 0 or more"

    @classmethod
    def parse(cls, value: object) -> Count:
        number = _integer(value)
        if number < 0:
            raise ValueError(cls.expected)
        return cls(number)


class Attempts(int):
    """An integer of 1 or more (``retries``)."""

    expected: ClassVar[str] = "an integer of 1 or more"

    @classmethod
    def parse(cls, value: object) -> Attempts:
        number = _integer(value)
        if number < 1:
            raise ValueError(cls.expected)
        return cls(number)


class Text(str):
    """A non-empty string (a path, a glob, a process or user name)."""

    expected: ClassVar[str] = "a non-empty string"

    @classmethod
    def parse(cls, value: object) -> Text:
        return cls(_text(value))


class Name(str):
    """A check or host name: letters, digits, ``_ . : -``, at most 100, not starting with a sign."""

    expected: ClassVar[str] = "a name of letters, digits, '_', '.', ':' or '-' (at most 100)"

    @classmethod
    def parse(cls, value: object) -> Name:
        if not NAME_RE.fullmatch(_text(value)):
            raise ValueError(cls.expected)
        return cls(value)


class HttpUrl(str):
    """An ``http://`` or ``https://`` URL with a host."""

    expected: ClassVar[str] = "an http:// or https:// URL"

    @classmethod
    def parse(cls, value: object) -> HttpUrl:
        if not re.match(r"^https?://[^/\s]+", _text(value)):
            raise ValueError(cls.expected)
        return cls(value)


class ProxyUrl(str):
    """An HTTP proxy: ``http://[user:password@]host:port``, or ``none`` (no proxy, whatever the
    environment says). Errors never show the value: it may hold a password."""

    expected: ClassVar[str] = "an HTTP proxy URL such as http://proxy.example:3128 (or none)"
    secret: ClassVar[bool] = True

    @classmethod
    def parse(cls, value: object) -> ProxyUrl:
        text = _text(value).strip()
        if text.lower() == "none":
            return cls("none")
        m = re.match(r"^http://(?:[^@/\s]*@)?(\[[0-9a-fA-F:.]+\]|[^:/@\s\[\]]+):(\d{1,5})/?$", text)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ValueError(cls.expected)
        return cls(text)


class Regex(str):
    """A regular expression (Python ``re`` syntax), checked to compile."""

    expected: ClassVar[str] = "a regular expression"

    @classmethod
    def parse(cls, value: object) -> Regex:
        text = _text(value)
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"a valid regular expression ({exc})") from None
        return cls(text)


class HttpMethod(str):
    """An HTTP method (a token), upper-cased: ``get`` → ``GET``."""

    expected: ClassVar[str] = "an HTTP method such as GET or HEAD"

    @classmethod
    def parse(cls, value: object) -> HttpMethod:
        text = _text(value)
        if not is_token(text):
            raise ValueError(cls.expected)
        return cls(text.upper())


class Address(tuple[str, int]):
    """``(host, port)``, written ``127.0.0.1:9847`` or ``[::1]:9847``."""

    expected: ClassVar[str] = "an address such as 127.0.0.1:9847"

    @classmethod
    def parse(cls, value: object) -> Address:
        return cls(parse_address(value))

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]

    def __str__(self) -> str:
        return f"[{self[0]}]:{self[1]}" if ":" in self[0] else f"{self[0]}:{self[1]}"


class StatusCodes(tuple[int, ...]):
    """HTTP status codes (100-599), written ``[200, 302]`` or ``200``."""

    expected: ClassVar[str] = "a list of HTTP status codes, e.g. [200, 302]"

    @classmethod
    def parse(cls, value: object) -> StatusCodes:
        items: list[object] = list(value) if isinstance(value, list) else [value]
        codes = [v for v in items if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599]
        if not items or len(codes) != len(items):
            raise ValueError(cls.expected)
        return cls(codes)


class Argv(tuple[str, ...]):
    """A command as a list of arguments (never a shell string)."""

    expected: ClassVar[str] = (
        "a non-empty list of strings, e.g. [/usr/lib/nagios/plugins/check_load, -w, 4]"
    )

    @classmethod
    def parse(cls, value: object) -> Argv:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(cls.expected)
        return cls(value)


class Env(dict[str, str]):
    """Environment variables: names to strings (numbers are written as text)."""

    expected: ClassVar[str] = "a mapping of names to strings"

    @classmethod
    def parse(cls, value: object) -> Env:
        return cls(_str_map(value))


class Headers(dict[str, str]):
    """HTTP request headers: token names to one-line values."""

    expected: ClassVar[str] = "a mapping of names to strings"

    @classmethod
    def parse(cls, value: object) -> Headers:
        headers = _str_map(value)
        for name, text in headers.items():
            if not is_token(name):
                raise ValueError(f"header names of letters, digits and '-' ({name!r} is not one)")
            if not is_one_line(text):
                raise ValueError(f"header values on one line ({name} has a line break or NUL)")
        return cls(headers)


def dec_hook(tp: Any, value: object) -> object:
    """msgspec's hook for the types above (and ``pathlib.Path``: a non-empty string)."""
    if tp is Path:
        return Path(_text(value))
    parse = getattr(tp, "parse", None)
    if parse is None:
        raise NotImplementedError(f"no parser for {tp!r}")
    return parse(value)


#: The words for the types msgspec checks itself (its own messages name Python types).
NATIVE_EXPECTED: dict[Any, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: Text.expected,
}
