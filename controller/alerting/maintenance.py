"""Is a host inside a maintenance window right now? (pure; time comes in as unix seconds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from controller.notify.config import MaintenanceWindow

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expr: str, zone: str) -> CronTrigger:
    """A trigger for a standard 5-field crontab line (day of week 0 or 7 = Sunday, as in cron(8)).

    APScheduler 3 numbers days from Monday = 0, so numeric days are translated to names first.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 cron fields, got {len(fields)}")
    minute, hour, day, month, dow = fields
    dow = re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: _DAYS[int(m.group(1))], dow)
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=ZoneInfo(zone)
    )


@lru_cache(maxsize=256)
def _trigger(expr: str, zone: str) -> CronTrigger:
    return cron_trigger(expr, zone)


def covers(window: MaintenanceWindow, *, client: str | None, host: str) -> bool:
    """Whether the window applies to this host (no clients and no hosts listed: every host)."""
    if window.clients is None and window.hosts is None:
        return True
    return (window.hosts is not None and host in window.hosts) or (
        window.clients is not None and client is not None and client in window.clients
    )


def is_active(window: MaintenanceWindow, now: float) -> bool:
    """Whether ``now`` falls inside the window (start inclusive, end exclusive)."""
    if window.cron is None:
        assert window.start is not None and window.end is not None
        return window.start <= now < window.end
    assert window.duration is not None
    zone = ZoneInfo(window.timezone)
    moment = datetime.fromtimestamp(now, UTC).astimezone(zone)
    earliest = moment - timedelta(seconds=window.duration)
    # The first firing after (now - duration): inside the window when it is not later than now.
    trigger = _trigger(window.cron, window.timezone)
    fire = trigger.get_next_fire_time(None, earliest + timedelta(microseconds=1))
    return fire is not None and fire <= moment


def active_window(
    windows: tuple[MaintenanceWindow, ...], *, client: str | None, host: str, now: float
) -> MaintenanceWindow | None:
    """The first window that covers the host and is active now, if any."""
    for window in windows:
        if covers(window, client=client, host=host) and is_active(window, now):
            return window
    return None
