"""Controller configuration: YAML file → one frozen, typed :class:`ControllerConfig`.

Order of precedence (lowest first): built-in defaults → the YAML file → environment variables
(``BOXKEEPER_LISTEN``, ``BOXKEEPER_DATABASE``, ``BOXKEEPER_STATE_DIR``,
``BOXKEEPER_OPERATOR_TOKENS_FILE``) → command-line flags (``load(..., overrides=...)``).

Every section is a model of :mod:`controller.configkit` (one validation path): the plug-in
sections come from their registries (``notify``: :mod:`controller.alerting.channels.registry`),
``maintenance`` from :mod:`controller.alerting.maintenance`, ``detection`` from
:mod:`controller.detection.config`. Every error names the file, the key path and what was
expected, e.g.::

    /etc/boxkeeper/controller.yaml: clients[0].hosts[1].ssh.address: expected an address such as
    203.0.113.5:22, got 'nowhere'

This module is the top of the config tree: the domain packages never import it (they take the
typed section they need).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator, field_validator, model_validator

from controller.alerting.channels.registry import AnyChannel
from controller.alerting.channels.registry import named as named_channels
from controller.alerting.maintenance import MaintenanceWindow
from controller.alerting.maintenance import named as named_windows
from controller.configkit import (
    NOT_SHOWN,
    Bool,
    ConfigModel,
    Expect,
    Invalid,
    Name,
    PositiveInt,
    PositiveNumber,
    Secret,
    Size,
    Text,
    TimeZone,
    Url,
    parse_address,
    parse_text,
    read_yaml,
    validate,
)
from controller.detection.config import DetectionConfig
from controller.retention import RetentionSettings
from controller.workflows.playbook import BUILTINS
from controller.workflows.steps.fields import IDENTIFIER
from controller.workflows.template import Value

ENV_OVERRIDES: dict[str, str] = {
    "BOXKEEPER_LISTEN": "listen",
    "BOXKEEPER_DATABASE": "database",
    "BOXKEEPER_STATE_DIR": "state_dir",
    "BOXKEEPER_OPERATOR_TOKENS_FILE": "operator_tokens_file",
}

DEFAULT_STATE_DIR = "/var/lib/boxkeeper"
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _database(value: object) -> str:
    url = parse_text(value)
    if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", url):
        raise ValueError("a database URL")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and _LABEL_RE.match(k) for k in value):
        raise ValueError("label names")
    if any(k in ("client", "host") for k in value):
        raise ValueError("labels other than 'client' and 'host'")
    return {str(k): str(v) for k, v in value.items()}


ListenAddress = Annotated[tuple[str, int], Expect("an address such as 127.0.0.1:8470", parse_address)]
SshAddress = Annotated[tuple[str, int], Expect("an address such as 203.0.113.5:22", parse_address)]
DatabaseUrl = Annotated[str, Expect(
    "a database URL: sqlite:////path/to/file.db or postgresql+psycopg://user@host/db", _database), Secret()]
Labels = Annotated[dict[str, str], Expect(
    "a mapping of label names ([a-zA-Z_][a-zA-Z0-9_]*) to strings, other than 'client' and 'host' "
    "(those are set by boxkeeper)", _labels)]


class SshSection(ConfigModel):
    address: SshAddress
    user: Text | None = None
    key_file: Text | None = None
    jump: Text | None = None  # [user@]host[:port] of a bastion (same key file)


class AgentSection(ConfigModel):
    """How ``boxkeeper hosts enroll`` installs the agent on the host (docs/agent.md, "Enrolment")."""

    #: the box's files live under this directory of the machine reached over SSH, and it runs from
    #: there (a test box, a chroot whose processes run on that machine); "/" for a real box
    root: Text = "/"
    #: the agent's /metrics address (discover's default: 127.0.0.1:9847)
    listen: ListenAddress | None = None
    #: the Python the venv is made with (default: /usr/bin/python3, else python3 on PATH)
    python: Text | None = None
def _run_vars(value: object) -> dict[str, Value]:
    """``vars:`` of a host or site: playbook variable name → a string, number, true/false or a list
    of words (argv). Whether a playbook declares the name is checked when a run starts."""
    if not isinstance(value, Mapping):
        raise ValueError("a mapping of playbook variables to values")
    out: dict[str, Value] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not IDENTIFIER.fullmatch(key) or key in BUILTINS:
            raise Invalid(str(key), "a playbook variable name (letters, digits, _; not run_id or host)", key)
        if isinstance(raw, bool | int | float | str):
            out[key] = raw
        elif isinstance(raw, list) and all(isinstance(word, str) for word in raw):
            out[key] = tuple(raw)
        else:
            # the value itself is not echoed: a host's vars may hold a secret (a playbook's secret variable)
            raise Invalid(key, "a string, a number, true/false or a list of words", NOT_SHOWN)
    return out


def _absolute(value: object) -> str:
    path = parse_text(value)
    if not path.startswith("/"):
        raise ValueError("an absolute path")
    return path


RunVars = Annotated[dict[str, Value], PlainValidator(_run_vars)]
AbsolutePath = Annotated[str, Expect("an absolute path such as /home/bitrix/ext_www/shop", _absolute)]


class SiteConfig(ConfigModel):
    """One of several sites on a host (``ext_www/<site>``): picked with ``update run --site NAME``;
    its ``docroot``, ``portal_url`` and ``vars`` then win over the host's."""

    name: Name
    docroot: AbsolutePath
    portal_url: Url | None = None
    vars: RunVars = Field(default_factory=dict)


class HostConfig(ConfigModel):
    name: Name
    portal_url: Url | None = None
    timezone: TimeZone = "UTC"  # default: the client's
    labels: Labels = Field(default_factory=dict)
    ssh: SshSection | None = None
    agent: AgentSection = Field(default_factory=AgentSection)
    vars: RunVars = Field(default_factory=dict)  # playbook variables for runs on this host
    sites: Annotated[tuple[SiteConfig, ...], Expect("a list of sites")] = ()

    @field_validator("sites")
    @classmethod
    def _site_names_are_unique(cls, sites: tuple[SiteConfig, ...]) -> tuple[SiteConfig, ...]:
        seen: dict[str, int] = {}
        for i, site in enumerate(sites):
            if site.name in seen:
                first = seen[site.name]
                raise Invalid(f"[{i}].name", f"a site name unique on the host (sites[{first}] has it too)",
                              site.name)
            seen[site.name] = i
        return sites

    def site(self, name: str) -> tuple[int, SiteConfig] | None:
        return next(((i, s) for i, s in enumerate(self.sites) if s.name == name), None)

    @property
    def ssh_address(self) -> tuple[str, int] | None:
        return None if self.ssh is None else self.ssh.address


class ClientConfig(ConfigModel):
    name: Name
    timezone: TimeZone = "UTC"
    hosts: Annotated[tuple[HostConfig, ...], Expect("a list of hosts")] = ()

    @model_validator(mode="before")
    @classmethod
    def _hosts_inherit_the_time_zone(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("hosts"), list):
            zone = data.get("timezone") or "UTC"
            hosts = [{"timezone": zone, **h} if isinstance(h, Mapping) else h for h in data["hosts"]]
            data = {**data, "hosts": hosts}
        return data


class IngestSection(ConfigModel):
    max_report_bytes: Size = 1024 * 1024


class RateLimit(ConfigModel):
    """A token bucket per token: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: PositiveNumber
    burst: PositiveInt


class LimitsSection(ConfigModel):
    """Per-token rate limits (429 + Retry-After) and the body limit of every endpoint but ingest
    (413; ingest has ``ingest.max_report_bytes``). See controller/api/limits.py for the numbers."""

    agent: RateLimit = RateLimit(per_second=2, burst=10000)  # POST /api/v1/reports, per agent token
    operator: RateLimit = RateLimit(per_second=10, burst=300)  # every other /api/ call, per operator token
    max_body_bytes: Size = 1024 * 1024


class MetricsSection(ConfigModel):
    require_token: Bool = False  # /metrics needs an operator token


def _pem_problem(path: str) -> str | None:
    """Why ``path`` is not a readable PEM file, or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError as exc:
        return f"a readable PEM file ({exc.strerror or exc})"
    if b"-----BEGIN " not in head:
        return "a PEM file (it has no -----BEGIN line)"
    return None


class TlsSection(ConfigModel):
    """``serve`` over HTTPS: ``tls: {certificate: /etc/boxkeeper/tls.crt, key: /etc/boxkeeper/tls.key}``
    (the certificate file may hold the chain after it; the key must be unencrypted)."""

    certificate: Text
    key: Text

    @model_validator(mode="after")
    def _files_load_and_match(self) -> TlsSection:
        for key, path in (("certificate", self.certificate), ("key", self.key)):
            problem = _pem_problem(path)
            if problem:
                raise Invalid(key, problem, path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.certificate, self.key, password=lambda: "")
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc.reason) or "key values mismatch" in str(exc):
                raise Invalid("key", f"the private key of the certificate {self.certificate} "
                                     "(this key does not match it)", self.key) from None
            raise Invalid("certificate", "a PEM certificate, with an unencrypted PEM private key in "
                                         f"tls.key, that OpenSSL can load ({exc.reason or exc})",
                          self.certificate) from None
        return self


class ControllerConfig(ConfigModel):
    listen: ListenAddress = ("127.0.0.1", 8470)
    state_dir: Text = DEFAULT_STATE_DIR
    database: DatabaseUrl = ""  # default: sqlite:///<state_dir>/boxkeeper.db
    operator_tokens_file: Text = ""  # default: <state_dir>/operators.yaml
    ingest: IngestSection = IngestSection()
    metrics: MetricsSection = MetricsSection()
    tls: TlsSection | None = None  # serve HTTPS itself (else plain HTTP, e.g. behind nginx)
    limits: LimitsSection = LimitsSection()
    clients: Annotated[tuple[ClientConfig, ...], Expect("a list of clients")] = ()
    notify: Annotated[tuple[AnyChannel, ...], Expect("a list of channels")] = ()
    maintenance: Annotated[tuple[MaintenanceWindow, ...], Expect("a list of maintenance windows")] = ()
    detection: DetectionConfig = DetectionConfig()
    retention: RetentionSettings = RetentionSettings()
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("clients")
    @classmethod
    def _host_names_are_unique_in_the_fleet(
        cls, clients: tuple[ClientConfig, ...]
    ) -> tuple[ClientConfig, ...]:
        seen_clients: dict[str, int] = {}
        seen_hosts: dict[str, str] = {}
        for ci, client in enumerate(clients):
            if client.name in seen_clients:
                raise Invalid(f"[{ci}].name",
                              f"a unique client name (clients[{seen_clients[client.name]}] has it too)",
                              client.name)
            seen_clients[client.name] = ci
            for hi, host in enumerate(client.hosts):
                if host.name in seen_hosts:
                    raise Invalid(f"[{ci}].hosts[{hi}].name",
                                  f"a host name unique in the fleet ({seen_hosts[host.name]} has it too)",
                                  host.name)
                seen_hosts[host.name] = f"client {client.name}"
        return clients

    @field_validator("notify")
    @classmethod
    def _channel_names(cls, channels: tuple[Any, ...]) -> tuple[Any, ...]:
        return named_channels(channels)

    @field_validator("maintenance")
    @classmethod
    def _window_names(cls, windows: tuple[MaintenanceWindow, ...]) -> tuple[MaintenanceWindow, ...]:
        return named_windows(windows)

    @property
    def listen_host(self) -> str:
        return self.listen[0]

    @property
    def listen_port(self) -> int:
        return self.listen[1]

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def listen_text(self) -> str:
        host, port = self.listen
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def max_report_bytes(self) -> int:
        return self.ingest.max_report_bytes

    @property
    def metrics_require_token(self) -> bool:
        return self.metrics.require_token

    def client(self, name: str) -> ClientConfig | None:
        return next((c for c in self.clients if c.name == name), None)

    def host(self, name: str) -> tuple[ClientConfig, HostConfig] | None:
        for client in self.clients:
            for host in client.hosts:
                if host.name == name:
                    return client, host
        return None


def parse(
    data: object,
    source: str = "<config>",
    overrides: Mapping[str, object] | None = None,
    base_dir: Path | None = None,
) -> ControllerConfig:
    """Validate a raw (already YAML-decoded) config.

    Relative ``state_dir`` and ``operator_tokens_file`` are taken relative to ``base_dir`` (the
    config file's directory), so an example config works wherever the checkout is.
    """
    base = base_dir or Path.cwd()
    if data is None:
        data = {}
    raw: object = {**data, **(overrides or {})} if isinstance(data, Mapping) else data
    cfg = validate(ControllerConfig, raw, source=source)
    state_dir = str(base / cfg.state_dir)
    tokens = str(base / (cfg.operator_tokens_file or Path(state_dir) / "operators.yaml"))
    return cfg.model_copy(update={
        "state_dir": state_dir, "operator_tokens_file": tokens, "source": source,
        "database": cfg.database or f"sqlite:///{state_dir}/boxkeeper.db",
    })


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
    data = read_yaml(path)
    return parse(data, str(path), merged, Path(path).absolute().parent)
