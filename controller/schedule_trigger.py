"""An APScheduler 3 trigger that fires on a :class:`~controller.schedule.CronSchedule`.

APScheduler's own ``CronTrigger`` numbers weekdays from Monday = 0 and applies steps after that,
so ``*/2`` fires on the wrong days; this trigger asks the schedule instead. It pickles as its
expression and time zone (the update-window jobs live in an SQLAlchemy job store), so a stored job
is parsed again when it is loaded and survives changes to :class:`CronSchedule`'s internals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from controller.schedule import CronSchedule

_STATE_VERSION = 1


# APScheduler 3 ships no type hints, so its base class is Any to mypy.
class CronScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    def __init__(self, schedule: CronSchedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The first start after the previous fire time; without one, the first at or after now."""
        if previous_fire_time is None:
            return self.schedule.next_after(now - timedelta(microseconds=1))
        return self.schedule.next_after(previous_fire_time)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "expr": self.schedule.expr, "timezone": self.schedule.timezone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"stored {type(self).__name__} has state version {state.get('version')!r}, "
                             f"this controller reads version {_STATE_VERSION}")
        self.schedule = CronSchedule.parse(state["expr"], state["timezone"])

    def __str__(self) -> str:
        return f"cron[{self.schedule.expr}] {self.schedule.timezone}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.schedule.expr!r} {self.schedule.timezone}>"
