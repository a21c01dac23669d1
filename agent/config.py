"""Agent configuration: YAML file → validated, frozen values.

Order of precedence (lowest first): built-in defaults → the YAML file → environment variables
(``BOXKEEPER_AGENT_HOST``, ``_LISTEN``, ``_INTERVAL``, ``_CONTROLLER_URL``, ``_TOKEN_FILE``,
``_SPOOL_DIR``) → command-line flags (applied by the CLI through :func:`load` ``overrides``).

Every error names the file, the key path and what was expected, e.g.::

    config/agent.yaml: checks[2].timeout: expected a duration such as 10s, 5m or 1h, got 'ten'
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agent.errors import ConfigError
from agent.httpwire import is_one_line, is_token

CheckType = Literal["http", "process", "tcp", "disk", "file_age", "command"]
CHECK_TYPES: tuple[str, ...] = ("http", "process", "tcp", "disk", "file_age", "command")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "BOXKEEPER_AGENT_HOST": ("host",),
    "BOXKEEPER_AGENT_LISTEN": ("listen",),
    "BOXKEEPER_AGENT_INTERVAL": ("interval",),
    "BOXKEEPER_AGENT_CONTROLLER_URL": ("controller", "url"),
    "BOXKEEPER_AGENT_TOKEN_FILE": ("controller", "token_file"),
    "BOXKEEPER_AGENT_SPOOL_DIR": ("spool", "dir"),
}


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ControllerConfig:
    url: str
    token_file: Path
    push_interval: float = 15.0
    ca_file: Path | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class SpoolConfig:
    dir: Path = Path("/var/lib/boxkeeper/spool")
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class CheckConfig:
    """One check. Common keys first; ``options`` holds the type-specific keys, validated."""

    name: str
    type: CheckType
    interval: float
    timeout: float
    retries: int
    retry_interval: float
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    host: str
    interval: float
    listen_host: str
    listen_port: int
    controller: ControllerConfig | None
    spool: SpoolConfig
    checks: tuple[CheckConfig, ...]
    source: str = "<defaults>"

    @property
    def listen(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"


# ---------------------------------------------------------------------------------------------
# Scalar parsers (pure; raise ValueError with the expectation in words)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, None: 1,
}


def parse_duration(value: object) -> float:
    """``15s``, ``5m``, ``26h``, ``1d``, ``500ms`` or a number of seconds → seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 10s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError("a duration such as 10s, 5m or 1h")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError("a duration greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """``64MiB``, ``1GB``, ``512`` (bytes) → bytes (>= 0)."""
    if isinstance(value, bool):
        raise ValueError("a size such as 512KiB, 64MiB or 1GB")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ValueError("a size such as 512KiB, 64MiB or 1GB")
        unit = m.group(2).lower() if m.group(2) else None
        size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size < 0:
        raise ValueError("a size of zero or more")
    return size


def parse_percent(value: object) -> float:
    """``85%`` or ``85`` → 85.0 (0..100)."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+(\.\d+)?%?", text):
        raise ValueError("a percentage such as 85%")
    pct = float(text.rstrip("%"))
    if not 0 <= pct <= 100:
        raise ValueError("a percentage between 0% and 100%")
    return pct


def parse_address(value: object, default_host: str | None = None) -> tuple[str, int]:
    """``127.0.0.1:9847``, ``[::1]:9847`` or ``:9847`` → (host, port)."""
    text = str(value).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]*):(\d+)", text)
    if not m:
        raise ValueError("an address such as 127.0.0.1:9847")
    host = m.group(1) or m.group(3) or default_host
    port = int(m.group(2) or m.group(4))
    if not host or not 0 < port < 65536:
        raise ValueError("an address such as 127.0.0.1:9847 (port 1-65535)")
    return host, port


# ---------------------------------------------------------------------------------------------
# Reader: walks the raw mapping, keeps the key path for error messages


class _Reader:
    def __init__(self, source: str, data: Mapping[str, Any], path: str) -> None:
        self.source = source
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, parse: Any, default: Any = ..., *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            if required or default is ...:
                raise ConfigError(self.source, self.key(name), _describe(parse) + " (required)")
            return default
        raw = self.data[name]
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.source, self.key(name), str(exc) or _describe(parse), raw) from None

    def sub(self, name: str) -> _Reader | None:
        self.used.add(name)
        raw = self.data.get(name)
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ConfigError(self.source, self.key(name), "a mapping of keys to values", raw)
        return _Reader(self.source, raw, self.key(name))

    def reject_unknown(self) -> None:
        for name in self.data:
            if name not in self.used:
                expected = "one of " + ", ".join(sorted(self.used))
                raise ConfigError(self.source, self.key(str(name)), f"no such key; expected {expected}")


def _describe(parse: Any) -> str:
    return {
        parse_duration: "a duration such as 10s, 5m or 1h",
        parse_size: "a size such as 512KiB, 64MiB or 1GB",
        parse_percent: "a percentage such as 85%",
        _str: "a string",
        _int: "an integer",
        _bool: "true or false",
        _name: "a name of letters, digits, '_', '.', ':' or '-' (at most 100)",
        _url: "an http:// or https:// URL",
        _str_list: "a non-empty list of strings, e.g. [/usr/lib/nagios/plugins/check_load, -w, 4]",
        _regex: "a regular expression",
        _address: "an address such as 127.0.0.1:9847",
        parse_address: "an address such as 127.0.0.1:9847",
    }.get(parse, "a value")


def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an integer")
    return value


def _non_negative_int(value: object) -> int:
    number = _int(value)
    if number < 0:
        raise ValueError("an integer of 0 or more")
    return number


def _positive_int(value: object) -> int:
    number = _int(value)
    if number < 1:
        raise ValueError("an integer of 1 or more")
    return number


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _str_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("a non-empty list of strings, e.g. [/usr/lib/nagios/plugins/check_load, -w, 4]")
    return tuple(value)


def _status_list(value: object) -> tuple[int, ...]:
    items: list[object] = list(value) if isinstance(value, list) else [value]
    codes = [v for v in items if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599]
    if not items or len(codes) != len(items):
        raise ValueError("a list of HTTP status codes, e.g. [200, 302]")
    return tuple(codes)


def _regex(value: object) -> str:
    text = _str(value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"a valid regular expression ({exc})") from None
    return text


def _url(value: object) -> str:
    text = _str(value)
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError("an http:// or https:// URL")
    return text


def _address(value: object) -> tuple[str, int]:
    return parse_address(value)


def _name(value: object) -> str:
    text = _str(value)
    if not NAME_RE.match(text):
        raise ValueError("a name of letters, digits, '_', '.', ':' or '-' (at most 100)")
    return text


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("a mapping of names to strings")
    return {str(k): str(v) for k, v in value.items()}


def _http_method(value: object) -> str:
    text = _str(value)
    if not is_token(text):
        raise ValueError("an HTTP method such as GET or HEAD")
    return text


def _header_map(value: object) -> dict[str, str]:
    headers = _str_map(value)
    for name, text in headers.items():
        if not is_token(name):
            raise ValueError(f"header names of letters, digits and '-' ({name!r} is not one)")
        if not is_one_line(text):
            raise ValueError(f"header values on one line ({name} has a line break or NUL)")
    return headers


# ---------------------------------------------------------------------------------------------
# Per-type option schemas: key → (parser, default). ``...`` as default means required.

_TYPE_OPTIONS: dict[str, dict[str, tuple[Any, Any]]] = {
    "http": {
        "url": (_url, ...),
        "method": (_http_method, "GET"),
        "expect_status": (_status_list, tuple(range(200, 400))),
        "body_regex": (_regex, None),
        "body_not_regex": (_regex, None),
        "follow_redirects": (_bool, True),
        "verify_tls": (_bool, True),
        "ca_file": (_str, None),
        "headers": (_header_map, {}),
        "tls_warning_days": (_non_negative_int, 21),
        "tls_critical_days": (_non_negative_int, 7),
    },
    "process": {
        "match": (_str, None),
        "cmdline_regex": (_regex, None),
        "user": (_str, None),
        "min_count": (_non_negative_int, 1),
        "max_count": (_non_negative_int, None),
    },
    "tcp": {
        "address": (_address, ...),
    },
    "disk": {
        "path": (_str, ...),
        "warning": (parse_percent, 85.0),
        "critical": (parse_percent, 95.0),
        "inodes_warning": (parse_percent, 90.0),
        "inodes_critical": (parse_percent, 95.0),
    },
    "file_age": {
        "glob": (_str, ...),
        "max_age": (parse_duration, ...),
        "warning_age": (parse_duration, None),
        "min_size": (parse_size, 0),
        "min_count": (_non_negative_int, 1),
    },
    "command": {
        "command": (_str_list, ...),
        "env": (_str_map, {}),
    },
}

_COMMON_KEYS = ("name", "type", "interval", "timeout", "retries", "retry_interval")


def _check(source: str, raw: object, index: int, default_interval: float) -> CheckConfig:
    path = f"checks[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(source, path, "a mapping with at least name and type", raw)
    r = _Reader(source, raw, path)
    name = r.get("name", _name, required=True)
    check_type = r.get("type", _str, required=True)
    if check_type not in CHECK_TYPES:
        raise ConfigError(source, r.key("type"), "one of " + ", ".join(CHECK_TYPES), check_type)
    interval = r.get("interval", parse_duration, default_interval)
    timeout = r.get("timeout", parse_duration, 10.0)
    retries = r.get("retries", _positive_int, 1)
    retry_interval = r.get("retry_interval", parse_duration, min(5.0, interval))
    options: dict[str, Any] = {}
    for key, (parse, default) in _TYPE_OPTIONS[check_type].items():
        options[key] = r.get(key, parse, default, required=default is ...)
    r.reject_unknown()
    if check_type == "process" and not (options["match"] or options["cmdline_regex"]):
        raise ConfigError(source, r.key("match"), "a process name (match) or a cmdline_regex")
    max_count = options.get("max_count")
    if check_type == "process" and max_count is not None and max_count < options["min_count"]:
        raise ConfigError(source, r.key("max_count"), "a count not below min_count", raw.get("max_count"))
    if check_type == "disk" and options["warning"] > options["critical"]:
        raise ConfigError(source, r.key("warning"), "a percentage not above critical", raw.get("warning"))
    if check_type == "disk" and options["inodes_warning"] > options["inodes_critical"]:
        raise ConfigError(source, r.key("inodes_warning"), "a percentage not above inodes_critical",
                          raw.get("inodes_warning"))
    if check_type == "http" and options["tls_critical_days"] > options["tls_warning_days"]:
        raise ConfigError(source, r.key("tls_critical_days"), "a number of days not above tls_warning_days",
                          raw.get("tls_critical_days"))
    return CheckConfig(name, check_type, interval, timeout, retries, retry_interval, options)


def _set_path(data: dict[str, Any], keys: tuple[str, ...], value: object) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def parse(
    data: object,
    source: str = "<config>",
    overrides: Mapping[tuple[str, ...], object] | None = None,
) -> AgentConfig:
    """Validate a raw (already YAML-decoded) config into :class:`AgentConfig`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", "a mapping of keys to values", data)
    raw: dict[str, Any] = dict(data)
    for keys, value in (overrides or {}).items():
        _set_path(raw, keys, value)

    r = _Reader(source, raw, "")
    host = r.get("host", _name, socket.gethostname().split(".")[0] or "localhost")
    interval = r.get("interval", parse_duration, 15.0)
    listen_host, listen_port = r.get("listen", parse_address, ("127.0.0.1", 9847))

    controller = None
    c = r.sub("controller")
    if c is not None:
        controller = ControllerConfig(
            url=c.get("url", _url, required=True).rstrip("/"),
            token_file=Path(c.get("token_file", _str, required=True)),
            push_interval=c.get("push_interval", parse_duration, interval),
            ca_file=(lambda v: Path(v) if v else None)(c.get("ca_file", _str, None)),
            timeout=c.get("timeout", parse_duration, 10.0),
        )
        c.reject_unknown()

    spool = SpoolConfig()
    s = r.sub("spool")
    if s is not None:
        spool = SpoolConfig(
            dir=Path(s.get("dir", _str, str(spool.dir))),
            max_bytes=s.get("max_bytes", parse_size, spool.max_bytes),
        )
        s.reject_unknown()

    r.used.add("checks")
    raw_checks = raw.get("checks") or []
    if not isinstance(raw_checks, list):
        raise ConfigError(source, "checks", "a list of checks", raw_checks)
    checks = tuple(_check(source, item, i, interval) for i, item in enumerate(raw_checks))
    seen: dict[str, int] = {}
    for i, check in enumerate(checks):
        if check.name in seen:
            raise ConfigError(
                source, f"checks[{i}].name", f"a unique name (checks[{seen[check.name]}] has it too)",
                check.name,
            )
        seen[check.name] = i
    r.reject_unknown()
    return AgentConfig(host, interval, listen_host, listen_port, controller, spool, checks, source)


def env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], object]:
    return {keys: environ[var] for var, keys in ENV_OVERRIDES.items() if environ.get(var)}


def load(
    path: str | Path,
    overrides: Mapping[tuple[str, ...], object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Read and validate a config file; environment, then ``overrides`` (CLI flags) win."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", "a readable YAML file", exc.strerror or str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, where, "valid YAML", problem) from None
    merged = env_overrides(os.environ if environ is None else environ)
    merged.update(overrides or {})
    return parse(data, source, merged)
