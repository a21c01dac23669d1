"""Liveness: is a host's agent silent? (pure; the clock comes in as ``now``, unix seconds)."""

from __future__ import annotations

from typing import Protocol

from controller.detection.config import DetectionConfig

DEFAULT_PUSH_INTERVAL = 15.0
#: the longest an agent waits between two tries to push (agent/push.py: backoff capped at 60 s)
AGENT_MAX_RETRY_WAIT = 60.0


class ReportedState(Protocol):
    """What liveness needs of a host's state (the store's ``HostState`` row fits)."""

    @property
    def last_report_at(self) -> float | None: ...

    @property
    def push_interval_seconds(self) -> float | None: ...


def silence_after(cfg: DetectionConfig, push_interval: float | None, host: str | None = None) -> float:
    """Seconds without a report after which the agent counts as silent.

    Per-host ``silence_after`` wins, then the global one, else ``silence_factor`` × the push
    interval the agent announced in its last report; never less than ``min_silence``.
    """
    fixed = cfg.for_host(host).silence_after if host is not None else None
    fixed = fixed if fixed is not None else cfg.silence_after
    if fixed is not None:
        return fixed
    interval = push_interval if push_interval and push_interval > 0 else DEFAULT_PUSH_INTERVAL
    return max(cfg.min_silence, cfg.silence_factor * interval)


def is_silent(
    host_state: ReportedState | None, now: float, detection_cfg: DetectionConfig, host: str | None = None
) -> bool:
    """True when no report arrived for ``silence_after``.

    A host that never reported is not silent (its state is "unknown") unless
    ``never_reported: silent`` is configured.
    """
    last = host_state.last_report_at if host_state is not None else None
    if last is None:
        return detection_cfg.never_reported == "silent"
    push = host_state.push_interval_seconds if host_state is not None else None
    return now - last >= silence_after(detection_cfg, push, host)


def silent_for(host_state: ReportedState | None, now: float) -> float | None:
    """Seconds since the last report (None when never reported)."""
    last = host_state.last_report_at if host_state is not None else None
    return None if last is None else max(0.0, now - last)


def startup_grace(cfg: DetectionConfig, push_interval: float | None, host: str | None = None) -> float:
    """After a controller outage, how long a host that last reported before it has to report again
    before it may be declared down: ``startup_grace``, else its liveness timeout plus the agent's
    longest wait between two push tries (an agent that backed off fully still gets a whole
    liveness period)."""
    if cfg.startup_grace is not None:
        return cfg.startup_grace
    return silence_after(cfg, push_interval, host) + AGENT_MAX_RETRY_WAIT


def is_replaying(last_report_at: float | None, last_sent_at: float | None, cfg: DetectionConfig,
                 push_interval: float | None, host: str | None = None) -> bool:
    """The newest stored report was sent (agent clock) longer ago than the liveness timeout before
    it was received (controller clock): the agent is replaying its spool after an outage, and the
    check states are history, not the present. Needs agent clocks within that timeout (NTP)."""
    if not cfg.hold_replays or last_report_at is None or last_sent_at is None:
        return False
    return last_report_at - last_sent_at > silence_after(cfg, push_interval, host)
