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
      startup_grace: null          # after a controller outage: how long a host that last reported
                                   # before it may take to come back before it counts as down
                                   # (null: its liveness timeout + 60 s, the agent's longest retry wait)
      hold_replays: true           # a report sent longer ago than the liveness timeout (replayed
                                   # from the agent's spool) updates history but opens no check incident
      agent_down_severity: critical  # an agent that is down blinds every check of the host
      warning_incidents: true      # hard WARNING opens a warning incident (channels default: critical)
      hosts:
        portal-01: {silence_after: 90s, probes: true}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from controller.configkit import Bool, ConfigModel, Duration, Expect, PositiveInt, Severity


class HostDetection(ConfigModel):
    silence_after: Duration | None = None
    probes: Bool = True


class DetectionConfig(ConfigModel):
    evaluate_interval: Duration = 2.0
    silence_factor: Annotated[float, Field(ge=1), Expect("a factor of 1 or more")] = 3.0
    silence_after: Duration | None = None
    min_silence: Duration = 10.0
    never_reported: Annotated[Literal["unknown", "silent"], Expect("unknown or silent")] = "unknown"
    probe_timeout: Duration = 5.0
    probe_interval: Duration = 15.0
    probe_workers: PositiveInt = 8
    probe_verify_tls: Bool = True
    startup_grace: Duration | None = None
    hold_replays: Bool = True
    agent_down_severity: Severity = "critical"
    warning_incidents: Bool = True
    hosts: dict[str, HostDetection] = Field(default_factory=dict)

    def for_host(self, host: str) -> HostDetection:
        return self.hosts.get(host) or _DEFAULT_HOST  # one shared default: asked for every host every pass


_DEFAULT_HOST = HostDetection()
