"""Maintenance windows of the config: they mute notifications (incidents are still recorded).

::

    maintenance:
      - {name: nightly, clients: [acme], cron: "0 3 * * 6", duration: 2h, timezone: Europe/Moscow}
      - {hosts: [portal-01], start: "2026-12-01 22:00", end: "2026-12-02 02:00", timezone: Europe/Moscow}

A window is recurring (``cron`` + ``duration``, cron(8) semantics: :mod:`controller.schedule`) or
one-off (``start`` and ``end`` or ``duration``), in ``timezone``. No ``clients`` and no ``hosts``:
every host. Pure: time comes in as unix seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import model_validator

from controller.configkit import (
    ConfigModel,
    Duration,
    Expect,
    Invalid,
    Name,
    Names,
    Text,
    TimeZone,
    parse_text,
)
from controller.schedule import CronSchedule


def _local_time(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(parse_text(value))


LocalTime = Annotated[datetime, Expect('a date and time such as "2026-12-01 22:00"', _local_time)]


class MaintenanceWindow(ConfigModel):
    name: Name = ""  # default: window-<n>
    timezone: TimeZone = "UTC"
    clients: Names | None = None  # None (and hosts None): every host
    hosts: Names | None = None
    cron: Text | None = None
    duration: Duration | None = None
    start: LocalTime | None = None
    end: LocalTime | None = None

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceWindow:
        if self.cron is not None:
            try:
                CronSchedule.parse(self.cron, self.timezone)
            except ValueError as exc:
                raise Invalid("cron", f'a cron expression with 5 fields, e.g. "0 3 * * 6" ({exc})') from None
            if self.duration is None:
                raise Invalid("duration", "a duration such as 2h (required with cron)")
            if self.start is not None or self.end is not None:
                raise Invalid("start", "either cron+duration or start+end, not both")
        elif self.start is None:
            raise Invalid("cron", "cron+duration or start (+end or duration)")
        elif self.end is None and self.duration is None:
            raise Invalid("end", "an end time or a duration (required with start)")
        elif self.end is not None and self.duration is not None:
            raise Invalid("duration", "either end or duration with start, not both")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise Invalid("end", "a time after start")
        return self

    def _stamp(self, moment: datetime) -> float:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.timezone))
        return moment.timestamp()

    @property
    def starts_at(self) -> float | None:
        """A one-off window's start (unix seconds)."""
        return None if self.start is None else self._stamp(self.start)

    @property
    def ends_at(self) -> float | None:
        """A one-off window's end (unix seconds)."""
        if self.end is not None:
            return self._stamp(self.end)
        if self.start is not None and self.duration is not None:
            return self._stamp(self.start) + self.duration
        return None

    @cached_property
    def schedule(self) -> CronSchedule | None:
        return None if self.cron is None else CronSchedule.parse(self.cron, self.timezone)


def named(windows: tuple[MaintenanceWindow, ...]) -> tuple[MaintenanceWindow, ...]:
    """The windows with default names (``window-1`` …) filled in."""
    return tuple(w if w.name else w.model_copy(update={"name": f"window-{i + 1}"})
                 for i, w in enumerate(windows))


def covers(window: MaintenanceWindow, *, client: str | None, host: str) -> bool:
    """Whether the window applies to this host (no clients and no hosts listed: every host)."""
    if window.clients is None and window.hosts is None:
        return True
    return (window.hosts is not None and host in window.hosts) or (
        window.clients is not None and client is not None and client in window.clients
    )


def is_active(window: MaintenanceWindow, now: float) -> bool:
    """Whether ``now`` falls inside the window (start inclusive, end exclusive)."""
    schedule = window.schedule
    if schedule is None:
        start, end = window.starts_at, window.ends_at
        return start is not None and end is not None and start <= now < end
    assert window.duration is not None
    return schedule.is_active(datetime.fromtimestamp(now, UTC), timedelta(seconds=window.duration))


def active_window(
    windows: tuple[MaintenanceWindow, ...], *, client: str | None, host: str, now: float
) -> MaintenanceWindow | None:
    """The first window that covers the host and is active now, if any."""
    for window in windows:
        if covers(window, client=client, host=host) and is_active(window, now):
            return window
    return None
