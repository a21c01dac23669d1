"""Controller configuration: YAML file → validated, frozen values.

Order of precedence (lowest first): built-in defaults → the YAML file → environment variables
(``BOXKEEPER_LISTEN``, ``BOXKEEPER_DATABASE``, ``BOXKEEPER_STATE_DIR``,
``BOXKEEPER_OPERATOR_TOKENS_FILE``) → command-line flags (``load(..., overrides=...)``).

Every error names the file, the key path and what was expected, e.g.::

    /etc/boxkeeper/controller.yaml: clients[0].hosts[1].ssh.address: expected an address such as
    203.0.113.5:22, got 'nowhere'

The sections ``notify``, ``maintenance`` and ``detection`` are parsed by the incidents side
(``controller.notify.config``, ``controller.detection.config``); this module calls their parsers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.configkit import boolean, text, timezone
from controller.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

ENV_OVERRIDES: dict[str, str] = {
    "BOXKEEPER_LISTEN": "listen",
    "BOXKEEPER_DATABASE": "database",
    "BOXKEEPER_STATE_DIR": "state_dir",
    "BOXKEEPER_OPERATOR_TOKENS_FILE": "operator_tokens_file",
}

DEFAULT_STATE_DIR = "/var/lib/boxkeeper"


@dataclass(frozen=True)
class HostConfig:
    name: str
    portal_url: str | None = None
    ssh_address: tuple[str, int] | None = None
    ssh_user: str | None = None
    ssh_key_file: str | None = None
    ssh_jump: str | None = None
    timezone: str = "UTC"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientConfig:
    name: str
    timezone: str = "UTC"
    hosts: tuple[HostConfig, ...] = ()


@dataclass(frozen=True)
class ControllerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8470
    database: str = f"sqlite:///{DEFAULT_STATE_DIR}/boxkeeper.db"
    state_dir: str = DEFAULT_STATE_DIR
    operator_tokens_file: str = f"{DEFAULT_STATE_DIR}/operators.yaml"
    max_report_bytes: int = 1024 * 1024
    metrics_require_token: bool = False
    clients: tuple[ClientConfig, ...] = ()
    notify: tuple[Any, ...] = ()
    maintenance: tuple[Any, ...] = ()
    detection: Any = None
    source: str = "<defaults>"

    @property
    def listen(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"

    def client(self, name: str) -> ClientConfig | None:
        return next((c for c in self.clients if c.name == name), None)

    def host(self, name: str) -> tuple[ClientConfig, HostConfig] | None:
        for client in self.clients:
            for host in client.hosts:
                if host.name == name:
                    return client, host
        return None


# ---------------------------------------------------------------------------------------------
# Scalar parsers (raise ValueError whose text is the expectation in words)


def parse_address(value: object, what: str = "127.0.0.1:8470") -> tuple[str, int]:
    """``127.0.0.1:8470``, ``[::1]:8470`` → (host, port)."""
    given = str(value).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", given)
    if not m or isinstance(value, bool):
        raise ValueError(f"an address such as {what}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port < 65536:
        raise ValueError(f"an address such as {what} (port 0-65535)")
    return host, port


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|KB|MB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2, None: 1}


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("a size such as 1MiB or 512KiB")
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError("a size such as 1MiB or 512KiB")
    size = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower() if m.group(2) else None]
    if size < 1024:
        raise ValueError("a size of at least 1KiB")
    return size


def _name(value: object) -> str:
    given = text(value)
    if not NAME_RE.match(given):
        raise ValueError("a name of letters, digits, '_', '.', ':' or '-' (at most 100)")
    return given


def _url(value: object) -> str:
    given = text(value)
    if not re.match(r"^https?://[^/\s]+", given):
        raise ValueError("an http:// or https:// URL")
    return given


def _database(value: object) -> str:
    given = text(value)
    if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", given):
        raise ValueError("a database URL: sqlite:////path/to/file.db or postgresql+psycopg://user@host/db")
    if given.startswith("postgresql://"):
        given = "postgresql+psycopg://" + given[len("postgresql://"):]
    return given


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and LABEL_RE.match(k) for k in value):
        raise ValueError("a mapping of label names ([a-zA-Z_][a-zA-Z0-9_]*) to strings")
    if any(k in ("client", "host") for k in value):
        raise ValueError("labels other than 'client' and 'host' (those are set by boxkeeper)")
    return {str(k): str(v) for k, v in value.items()}


# ---------------------------------------------------------------------------------------------
# Reader: walks a mapping, keeps the key path for error messages


class _Reader:
    def __init__(self, source: str, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(source, path or "(top level)", "a mapping of keys to values", data)
        self.source = source
        self.data: Mapping[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, parse: Any, default: Any = ...) -> Any:
        self.used.add(name)
        raw = self.data.get(name)
        if raw is None:
            if default is ...:
                raise ConfigError(self.source, self.key(name), "a value (required)")
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(self.source, self.key(name), str(exc) or "a valid value", raw) from None

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def reject_unknown(self) -> None:
        for name in self.data:
            if name not in self.used:
                expected = "one of " + ", ".join(sorted(self.used))
                raise ConfigError(self.source, self.key(str(name)), f"no such key; expected {expected}")


def _host(source: str, raw: object, path: str, client_tz: str) -> HostConfig:
    r = _Reader(source, raw, path)
    name = r.get("name", _name)
    portal_url = r.get("portal_url", _url, None)
    zone = r.get("timezone", timezone, client_tz)
    labels = r.get("labels", _labels, {})
    ssh_address = ssh_user = ssh_key = ssh_jump = None
    ssh_raw = r.raw("ssh")
    if ssh_raw is not None:
        s = _Reader(source, ssh_raw, r.key("ssh"))
        ssh_address = s.get("address", lambda v: parse_address(v, "203.0.113.5:22"))
        ssh_user = s.get("user", text, None)
        ssh_key = s.get("key_file", text, None)
        ssh_jump = s.get("jump", text, None)
        s.reject_unknown()
    r.reject_unknown()
    return HostConfig(name, portal_url, ssh_address, ssh_user, ssh_key, ssh_jump, zone, labels)


def _client(source: str, raw: object, path: str) -> ClientConfig:
    r = _Reader(source, raw, path)
    name = r.get("name", _name)
    zone = r.get("timezone", timezone, "UTC")
    hosts_raw = r.raw("hosts")
    hosts_raw = [] if hosts_raw is None else hosts_raw
    if not isinstance(hosts_raw, list):
        raise ConfigError(source, r.key("hosts"), "a list of hosts", hosts_raw)
    hosts = tuple(_host(source, h, f"{r.key('hosts')}[{i}]", zone) for i, h in enumerate(hosts_raw))
    r.reject_unknown()
    return ClientConfig(name, zone, hosts)


def _d_sections(source: str, r: _Reader) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
    """Parse notify/maintenance/detection with the incidents side's parsers (when installed)."""
    notify_raw, maint_raw, det_raw = r.raw("notify"), r.raw("maintenance"), r.raw("detection")
    try:
        from controller.notify.config import parse_channels, parse_maintenance
    except ImportError:  # the notifications package is not there (yet): accept only empty sections
        if notify_raw or maint_raw:
            raise ConfigError(source, "notify", "no notify section (not installed)") from None
        notify: tuple[Any, ...] = ()
        maintenance: tuple[Any, ...] = ()
    else:
        notify = tuple(parse_channels(source, notify_raw, "notify"))
        maintenance = tuple(parse_maintenance(source, maint_raw, "maintenance"))
    try:
        from controller.detection.config import parse_detection
    except ImportError:
        detection = None
    else:
        detection = parse_detection(source, det_raw, "detection")
    return notify, maintenance, detection


def parse(
    data: object,
    source: str = "<config>",
    overrides: Mapping[str, object] | None = None,
    base_dir: Path | None = None,
) -> ControllerConfig:
    """Validate a raw (already YAML-decoded) config into :class:`ControllerConfig`.

    Relative ``state_dir`` and ``operator_tokens_file`` are taken relative to ``base_dir`` (the
    config file's directory), so an example config works wherever the checkout is.
    """
    base = base_dir or Path.cwd()
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", "a mapping of keys to values", data)
    raw: dict[str, Any] = dict(data)
    raw.update(overrides or {})
    r = _Reader(source, raw, "")
    listen_host, listen_port = r.get("listen", parse_address, ("127.0.0.1", 8470))
    state_dir = str(base / r.get("state_dir", text, DEFAULT_STATE_DIR))
    database = r.get("database", _database, f"sqlite:///{state_dir}/boxkeeper.db")
    tokens_file = str(base / r.get("operator_tokens_file", text, str(Path(state_dir) / "operators.yaml")))
    max_report_bytes = 1024 * 1024
    ingest_raw = r.raw("ingest")
    if ingest_raw is not None:
        i = _Reader(source, ingest_raw, "ingest")
        max_report_bytes = i.get("max_report_bytes", parse_size, max_report_bytes)
        i.reject_unknown()
    metrics_require_token = False
    metrics_raw = r.raw("metrics")
    if metrics_raw is not None:
        m = _Reader(source, metrics_raw, "metrics")
        metrics_require_token = m.get("require_token", boolean, False)
        m.reject_unknown()
    clients_raw = r.raw("clients")
    clients_raw = [] if clients_raw is None else clients_raw
    if not isinstance(clients_raw, list):
        raise ConfigError(source, "clients", "a list of clients", clients_raw)
    clients = tuple(_client(source, c, f"clients[{i}]") for i, c in enumerate(clients_raw))
    _check_unique(source, clients)
    notify, maintenance, detection = _d_sections(source, r)
    r.reject_unknown()
    return ControllerConfig(
        listen_host=listen_host, listen_port=listen_port, database=database, state_dir=state_dir,
        operator_tokens_file=tokens_file, max_report_bytes=max_report_bytes,
        metrics_require_token=metrics_require_token, clients=clients, notify=notify,
        maintenance=maintenance, detection=detection, source=source,
    )


def _check_unique(source: str, clients: tuple[ClientConfig, ...]) -> None:
    seen_clients: dict[str, int] = {}
    seen_hosts: dict[str, str] = {}
    for ci, client in enumerate(clients):
        if client.name in seen_clients:
            raise ConfigError(source, f"clients[{ci}].name",
                              f"a unique client name (clients[{seen_clients[client.name]}] has it too)",
                              client.name)
        seen_clients[client.name] = ci
        for hi, host in enumerate(client.hosts):
            if host.name in seen_hosts:
                raise ConfigError(source, f"clients[{ci}].hosts[{hi}].name",
                                  f"a host name unique in the fleet ({seen_hosts[host.name]} has it too)",
                                  host.name)
            seen_hosts[host.name] = f"client {client.name}"


def env_overrides(environ: Mapping[str, str]) -> dict[str, object]:
    return {key: environ[var] for var, key in ENV_OVERRIDES.items() if environ.get(var)}


def load(
    path: str | Path | None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ControllerConfig:
    """Read and validate a config file (None: defaults only); environment, then ``overrides`` win."""
    env = os.environ if environ is None else environ
    merged = env_overrides(env)
    merged.update(overrides or {})
    if path is None:
        return parse({}, "<defaults>", merged)
    source = str(path)
    try:
        content = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", "a readable YAML file", exc.strerror or str(exc)) from None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, where, "valid YAML", problem) from None
    return parse(data, source, merged, Path(path).absolute().parent)
