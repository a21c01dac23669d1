"""The ``detection:`` section of the controller config → :class:`DetectionConfig` (pure).

::

    detection:
      evaluate_interval: 2s        # how often every host is re-evaluated (and soon after each report)
      silence_factor: 3            # silent after 3 × the host's last push interval ...
      silence_after: null          # ... unless a fixed duration is set here (or per host below)
      min_silence: 10s             # never silent sooner than this
      never_reported: unknown      # unknown: a host that never reported opens nothing; silent: probe it
      probe_timeout: 5s            # TCP connect to SSH and HTTP GET of the portal URL
      probe_interval: 15s          # probe results are cached this long
      probe_workers: 8             # bounded thread pool for probes
      probe_verify_tls: true
      agent_down_severity: critical  # an agent that is down blinds every check of the host
      warning_incidents: true      # hard WARNING opens a warning incident (channels default: critical)
      hosts:
        portal-01: {silence_after: 90s, probes: true}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.configkit import (
    Reader,
    boolean,
    duration,
    positive_int,
    positive_number,
    severity,
)
from controller.errors import ConfigError


@dataclass(frozen=True)
class HostDetection:
    silence_after: float | None = None
    probes: bool = True


@dataclass(frozen=True)
class DetectionConfig:
    evaluate_interval: float = 2.0
    silence_factor: float = 3.0
    silence_after: float | None = None
    min_silence: float = 10.0
    never_reported: str = "unknown"
    probe_timeout: float = 5.0
    probe_interval: float = 15.0
    probe_workers: int = 8
    probe_verify_tls: bool = True
    agent_down_severity: str = "critical"
    warning_incidents: bool = True
    hosts: dict[str, HostDetection] = field(default_factory=dict)

    def for_host(self, host: str) -> HostDetection:
        return self.hosts.get(host, HostDetection())


def _never_reported(value: object) -> str:
    if value not in ("unknown", "silent"):
        raise ValueError("unknown or silent")
    return str(value)


def parse_detection(source: str, raw: object, path: str = "detection") -> DetectionConfig:
    """Validate the ``detection`` mapping (None → defaults)."""
    if raw is None:
        return DetectionConfig()
    r = Reader.of(source, raw, path, "a mapping of detection settings")
    d = DetectionConfig()
    hosts: dict[str, HostDetection] = {}
    raw_hosts = r.get("hosts", lambda v: v)
    if raw_hosts is not None:
        hr = Reader.of(source, raw_hosts, r.key("hosts"), "a mapping of host name to settings")
        for name in list(hr.data):
            h = Reader.of(source, hr.data[name], hr.key(str(name)), "a mapping such as {silence_after: 90s}")
            hosts[str(name)] = HostDetection(
                silence_after=h.get("silence_after", duration), probes=h.value("probes", boolean, True)
            )
            h.reject_unknown()
    config = DetectionConfig(
        evaluate_interval=r.value("evaluate_interval", duration, d.evaluate_interval),
        silence_factor=r.value("silence_factor", positive_number, d.silence_factor),
        silence_after=r.get("silence_after", duration),
        min_silence=r.value("min_silence", duration, d.min_silence),
        never_reported=r.value("never_reported", _never_reported, d.never_reported),
        probe_timeout=r.value("probe_timeout", duration, d.probe_timeout),
        probe_interval=r.value("probe_interval", duration, d.probe_interval),
        probe_workers=r.value("probe_workers", positive_int, d.probe_workers),
        probe_verify_tls=r.value("probe_verify_tls", boolean, d.probe_verify_tls),
        agent_down_severity=r.value("agent_down_severity", severity, d.agent_down_severity),
        warning_incidents=r.value("warning_incidents", boolean, d.warning_incidents),
        hosts=hosts,
    )
    r.reject_unknown()
    if config.silence_factor < 1:
        raise ConfigError(source, r.key("silence_factor"), "a factor of 1 or more", config.silence_factor)
    return config
