"""Liveness: is a host's agent silent? (pure; the clock comes in as ``now``, unix seconds)."""

from __future__ import annotations

from typing import Protocol

from controller.detection.config import DetectionConfig

DEFAULT_PUSH_INTERVAL = 15.0


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
