"""Which channels hear about an incident, and when a repeat is due (pure)."""

from __future__ import annotations

from controller.alerting.channels.base import ChannelSettings
from controller.configkit import severity_rank
from controller.detection.classify import HOST_KINDS

#: the events that are grouped per client (a repeat is per incident and already late by design)
GROUPED_EVENTS = ("firing", "resolved")


def routes_to(channel: ChannelSettings, *, client: str | None, severity: str) -> bool:
    """The channel takes incidents of this client (or every client) at or above its min_severity."""
    if channel.clients is not None and client not in channel.clients:
        return False
    return severity_rank(severity) >= severity_rank(channel.min_severity)


def channels_for(
    channels: tuple[ChannelSettings, ...], *, client: str | None, severity: str
) -> tuple[ChannelSettings, ...]:
    return tuple(c for c in channels if routes_to(c, client=client, severity=severity))


def repeat_due(channel: ChannelSettings, *, last_sent: float | None, now: float, acknowledged: bool) -> bool:
    """A re-notification is due: the channel repeats, the last one is ``repeat_interval`` old, and
    nobody acknowledged the incident (Alertmanager keeps getting re-sends while firing regardless,
    or it would resolve the alert by itself after its ``resolve_timeout``)."""
    if channel.repeat_interval is None or last_sent is None:
        return False
    if acknowledged and channel.type != "alertmanager":
        return False
    return now - last_sent >= channel.repeat_interval


def groups(channel: ChannelSettings) -> bool:
    """The channel groups host-level notifications per client (Alertmanager does that itself)."""
    return channel.group_wait > 0 and channel.type != "alertmanager"


def groupable(cause: str, event: str) -> bool:
    """A notification of this cause and event joins its client's group (a storm: many hosts of one
    client unreachable at once is one notification, not one per host)."""
    return cause in HOST_KINDS and event in GROUPED_EVENTS
