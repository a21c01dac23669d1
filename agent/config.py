"""Agent configuration: YAML file → validated, frozen values.

Order of precedence (lowest first): built-in defaults (in the structs below and in each check
type's spec) → the YAML file → environment variables (``BOXKEEPER_AGENT_HOST``, ``_LISTEN``,
``_INTERVAL``, ``_CONTROLLER_URL``, ``_TOKEN_FILE``, ``_SPOOL_DIR``, ``_STATE_DIR``) →
command-line flags (applied by the CLI through :func:`load` ``overrides``). A key given as null
counts as not given.

The top level is validated into :class:`AgentConfig` (msgspec), then each check, one by one, into
the spec of its ``type`` (:mod:`agent.checks.registry`), then the ``bitrix:`` block is expanded
into one check per site and signal (:mod:`agent.checks.bitrix.profile`), after the ``checks:``.
Every error names the file, the key path and what was expected (:mod:`agent.validation`), e.g.::

    config/agent.yaml: checks[2].timeout: expected a duration such as 10s, 5m or 1h, got 'ten'
    config/agent.yaml: bitrix[0].signals.agents.max_lag: expected a duration such as 10s, 5m or 1h, got 'soon'
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import msgspec
import yaml

from agent.checks.base import DEFAULT_INTERVAL, CheckSpec
from agent.checks.bitrix import profile
from agent.checks.registry import parse_check
from agent.configtypes import (
    NAME_RE,
    Address,
    Duration,
    HttpUrl,
    Name,
    ProxyUrl,
    Size,
    parse_address,
    parse_duration,
    parse_percent,
    parse_size,
)
from agent.errors import ConfigError
from agent.validation import convert

__all__ = [
    "ENV_OVERRIDES", "NAME_RE", "AgentConfig", "CheckSpec", "ControllerConfig", "SpoolConfig",
    "env_overrides", "load", "parse", "parse_address", "parse_duration", "parse_percent", "parse_size",
]

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "BOXKEEPER_AGENT_HOST": ("host",),
    "BOXKEEPER_AGENT_LISTEN": ("listen",),
    "BOXKEEPER_AGENT_INTERVAL": ("interval",),
    "BOXKEEPER_AGENT_CONTROLLER_URL": ("controller", "url"),
    "BOXKEEPER_AGENT_TOKEN_FILE": ("controller", "token_file"),
    "BOXKEEPER_AGENT_SPOOL_DIR": ("spool", "dir"),
    "BOXKEEPER_AGENT_STATE_DIR": ("state_dir",),
}


class ControllerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where reports go. ``push_interval`` defaults to the top-level ``interval``."""

    url: HttpUrl
    token_file: Path
    push_interval: Duration = DEFAULT_INTERVAL
    ca_file: Optional[Path] = None
    timeout: Duration = Duration(10.0)
    #: an HTTP proxy for the push (CONNECT for https): http://[user:password@]host:port, or none;
    #: absent: HTTPS_PROXY / HTTP_PROXY / NO_PROXY of the environment (agent/proxy.py)
    proxy: Optional[ProxyUrl] = None

    def __post_init__(self) -> None:
        if self.url.endswith("/"):
            msgspec.structs.force_setattr(self, "url", HttpUrl(self.url.rstrip("/")))


class SpoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    dir: Path = Path("/var/lib/boxkeeper/spool")
    max_bytes: Size = Size(64 * 1024 * 1024)


def _short_hostname() -> Name:
    return Name(socket.gethostname().split(".")[0] or "localhost")


class AgentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: Name = msgspec.field(default_factory=_short_hostname)
    interval: Duration = DEFAULT_INTERVAL
    listen_address: Address = msgspec.field(default=Address(("127.0.0.1", 9847)), name="listen")
    controller: Optional[ControllerConfig] = None
    spool: SpoolConfig = msgspec.field(default_factory=SpoolConfig)
    #: where checks keep what must outlive a restart (a log check's offset): one file per check
    state_dir: Path = Path("/var/lib/boxkeeper/state")
    checks: tuple[CheckSpec, ...] = ()  # each validated by its type's spec (parse_check), then bitrix:

    @property
    def listen_host(self) -> str:
        return self.listen_address.host

    @property
    def listen_port(self) -> int:
        return self.listen_address.port

    @property
    def listen(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"


def _set_path(data: dict[str, Any], keys: tuple[str, ...], value: object) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _given(data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that have a value (null: not given)."""
    return {key: value for key, value in data.items() if value is not None}


def parse(
    data: object,
    source: str = "<config>",
    overrides: Optional[Mapping[tuple[str, ...], object]] = None,
) -> AgentConfig:
    """Validate a raw (already YAML-decoded) config into :class:`AgentConfig`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", "a mapping of keys to values", data)
    raw: dict[str, Any] = {key: dict(value) if isinstance(value, Mapping) else value
                           for key, value in data.items()}
    for keys, value in (overrides or {}).items():
        _set_path(raw, keys, value)
    top = _given(raw)
    raw_checks = top.pop("checks", None) or []
    raw_bitrix = top.pop("bitrix", None)
    for section in ("controller", "spool"):
        if isinstance(top.get(section), Mapping):
            top[section] = _given(top[section])
    cfg = convert(AgentConfig, top, source=source)
    if cfg.controller is not None and "push_interval" not in top["controller"]:
        cfg = msgspec.structs.replace(
            cfg, controller=msgspec.structs.replace(cfg.controller, push_interval=cfg.interval))

    if not isinstance(raw_checks, list):
        raise ConfigError(source, "checks", "a list of checks", raw_checks)
    checks = tuple(
        parse_check(item, source=source, path=f"checks[{i}]", default_interval=cfg.interval)
        for i, item in enumerate(raw_checks)
    )
    seen: dict[str, int] = {}
    for i, check in enumerate(checks):
        if check.name in seen:
            raise ConfigError(
                source, f"checks[{i}].name", f"a unique name (checks[{seen[check.name]}] has it too)",
                check.name,
            )
        seen[check.name] = i
    expanded = tuple(profile.expand(raw_bitrix, source=source))
    for check in expanded:
        if check.name in seen:
            raise ConfigError(source, f"checks[{seen[check.name]}].name",
                              "a name the bitrix: block does not make too (it names its checks "
                              "bitrix-<signal>[-<site>])", check.name)
    return msgspec.structs.replace(cfg, checks=checks + expanded)


def env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], object]:
    return {keys: environ[var] for var, keys in ENV_OVERRIDES.items() if environ.get(var)}


def load(
    path: Union[str, Path],
    overrides: Optional[Mapping[tuple[str, ...], object]] = None,
    environ: Optional[Mapping[str, str]] = None,
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
