"""Cron schedules: the one place that understands crontab expressions (pure; time comes in).

A :class:`CronSchedule` is a crontab time specification in an IANA time zone, with the semantics
of cron(8) as documented in Debian's crontab(5) (Vixie cron):

- Five fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 (or ``jan``-``dec``), day of
  week 0-7 (0 and 7 are Sunday, or ``sun``-``sat``). Names are the first three letters, in any case,
  and may be used wherever a number may (``mon-fri``, ``jan,jul``), as cron(8)'s parser allows.
- A field is ``*``, a number, a range ``a-b``, a list ``1,3-5``, or a step over ``*`` or a range
  (``*/15``, ``1-5/2``): the step counts from the start of its range, so ``*/2`` in the day of week
  is 0,2,4,6 = Sun,Tue,Thu,Sat (cron numbers days from Sunday = 0; APScheduler 3 from Monday).
- ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``
  stand for ``0 0 1 1 *``, ``0 0 1 * *``, ``0 0 * * 0``, ``0 0 * * *`` and ``0 * * * *``.
- Day of month and day of week: when both are restricted, a day matches when EITHER matches; a
  field that starts with ``*`` (``*``, ``*/2``) is unrestricted, and then both must match. So
  ``0 0 13 * 5`` runs on every 13th and every Friday, ``0 0 13 * */2`` only on a 13th that is a
  Sunday, Tuesday, Thursday or Saturday (crontab(5): "restricted (i.e., don't start with *)"), and
  ``0 0 1 * 0-6`` every day (``0-6`` does not start with ``*``, so it is restricted).

Refused with a ValueError that says what is wrong and what is expected: ranges that run backwards
(crontab(5) has no wrapping ranges, so ``6-0`` is refused; write ``6-7`` or ``sat,sun``), a step
after a single number (``5/2``), a step of 0 or longer than its field, values out of range, full
day names, the ``L W # ?`` extensions, a seconds field, ``@reboot``, and day-of-month/month
combinations that never occur (``0 0 30 2 *``).

Daylight saving time follows cron(8), which tells jobs "at a particular time" from jobs with
``*`` at the start of the minute or hour field (wildcard jobs, e.g. ``@hourly``, ``*/15 * * * *``):

- A local time that does not exist (clocks spring forward): a fixed-time start in the gap moves to
  the first instant after it; wildcard starts in the gap are skipped, the schedule simply continues
  on the new time. Several fixed-time starts in one gap start once (cron(8) runs the job once per
  skipped start, seconds apart; a schedule has one start per instant).
- A local time that occurs twice (clocks fall back): a fixed-time start happens at the first
  occurrence only; a wildcard start happens at both (``30 * * * *`` stays hourly in real time).

Durations (:meth:`CronSchedule.is_active`) are elapsed time, not wall-clock time. Instants are
returned aware, in the schedule's zone: compare them with each other in UTC (Python compares two
datetimes with the same tzinfo by wall time, ignoring ``fold``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import product
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: how far :meth:`CronSchedule.latest_at_or_before` looks back: 29 February can be 8 years away
LOOKBACK = timedelta(days=8 * 366)
#: every day/weekday combination that can ever occur does so within one Gregorian cycle
_HORIZON_DAYS = 146_097
_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)

_SHORTCUTS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
              "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
              "@hourly": "0 * * * *"}
_EXPECTED = "5 fields (minute hour day-of-month month day-of-week) or @yearly/@monthly/@weekly/@daily/@hourly"
_MONTHS = {name: n for n, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_WEEKDAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ITEM = re.compile(r"(?:\*|(?P<first>[0-9a-z]+)(?:-(?P<last>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?", re.I | re.A)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            m = _ITEM.fullmatch(item)
            if m is None:
                raise ValueError(f"{self.name} {item!r} is not a number, a range a-b, * or a step "
                                 f"(*/n, a-b/n)")
            first, last = self.low, self.high
            if m["first"] is not None:
                first = last = self._value(m["first"])
                if m["last"] is not None:
                    last = self._value(m["last"])
                    if first > last:
                        raise ValueError(f"{self.name} range {item} runs backwards: ranges do not "
                                         f"wrap around, write {self._split(first, last)}")
                elif m["step"] is not None:
                    raise ValueError(f"{self.name} {item!r}: a step needs a range or * before it, "
                                     f"e.g. {m['first']}-{self.high}/{m['step']}")
            step = int(m["step"] or 1)
            if not 1 <= step <= self.high - self.low + 1:
                raise ValueError(f"{self.name} step {step} in {item!r} out of range "
                                 f"1-{self.high - self.low + 1}")
            values.update(range(first, last + 1, step))
        return frozenset(values)

    def _value(self, token: str) -> int:
        if token.isdigit():
            value = int(token)
        elif token.lower() in self.names:
            return self.names[token.lower()]
        else:
            names = list(self.names)
            spelled = f" or a name {names[0]}-{names[-1]}" if names else ""
            raise ValueError(f"{self.name} {token!r} is not a number{spelled}")
        if not self.low <= value <= self.high:
            note = f" ({self.note})" if self.note else ""
            raise ValueError(f"{self.name} {value} out of range {self.low}-{self.high}{note}")
        return value

    def _split(self, first: int, last: int) -> str:
        if self.high == 7 and last == 0:  # day of week: 7 is Sunday too
            return f"{first}-7"
        return f"{first}-{self.high},{self.low}" + (f"-{last}" if last > self.low else "")


_FIELDS = (_Field("minute", 0, 59), _Field("hour", 0, 23), _Field("day of month", 1, 31),
           _Field("month", 1, 12, _MONTHS, "or jan-dec"),
           _Field("day of week", 0, 7, _WEEKDAYS, "0 and 7 are Sunday"))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _exists(local: datetime) -> bool:
    """Whether an aware local time is shown by the clock (not skipped by a spring-forward)."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression in a time zone (build it with :meth:`parse`); see the module docstring."""

    expr: str
    timezone: str
    zone: ZoneInfo = field(repr=False, compare=False)
    times: tuple[timedelta, ...] = field(repr=False)  # start times as time since midnight, sorted
    days: frozenset[int] = field(repr=False)
    months: frozenset[int] = field(repr=False)
    weekdays: frozenset[int] = field(repr=False)  # 0 = Sunday ... 6 = Saturday
    either_day: bool = field(repr=False)  # both day fields restricted: day of month OR day of week
    wildcard: bool = field(repr=False)  # minute or hour starts with "*": cron(8)'s DST rule for them

    @classmethod
    def parse(cls, expr: str, timezone: str) -> CronSchedule:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}: expected an IANA name such as "
                             "Europe/Moscow") from None
        text = expr.strip()
        if text.startswith("@"):
            if text.lower() == "@reboot":
                raise ValueError(f"@reboot runs at boot, not on a schedule: expected {_EXPECTED}")
            if text.lower() not in _SHORTCUTS:
                raise ValueError(f"unknown shortcut {text!r}: expected {_EXPECTED}")
            text = _SHORTCUTS[text.lower()]
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"got {len(parts)} fields, expected {_EXPECTED}")
        minutes, hours, days, months, weekdays = (f.parse(p) for f, p in zip(_FIELDS, parts, strict=True))
        either_day = not parts[2].startswith("*") and not parts[4].startswith("*")
        if not either_day and not any(d <= _LONGEST_MONTH[m - 1] for d in days for m in months):
            raise ValueError(f"day of month {parts[2]} never occurs in month {parts[3]}: "
                             "the schedule would never start")
        return cls(expr=expr.strip(), timezone=timezone, zone=zone,
                   times=tuple(timedelta(hours=h, minutes=m) for h, m in sorted(product(hours, minutes))),
                   days=days, months=months,
                   weekdays=frozenset(d % 7 for d in weekdays), either_day=either_day,
                   wildcard=parts[0].startswith("*") or parts[1].startswith("*"))

    def next_after(self, moment: datetime) -> datetime:
        """The first start strictly after ``moment`` (aware), in the schedule's zone."""
        now = _utc(moment)
        for starts in self._days_starts(now.astimezone(self.zone).date() - _DAY, _HORIZON_DAYS, 1):
            i = bisect_right(starts, now)
            if i < len(starts):
                return starts[i].astimezone(self.zone)
        raise AssertionError(f"{self.expr!r} has no start in 400 years")  # parse() refuses those

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest start at or before ``moment``; None when there is none in :data:`LOOKBACK`."""
        now = _utc(moment)
        for starts in self._days_starts(now.astimezone(self.zone).date() + _DAY, LOOKBACK.days + 2, -1):
            i = bisect_right(starts, now)
            if i:
                return starts[i - 1].astimezone(self.zone) if now - starts[i - 1] <= LOOKBACK else None
        return None

    def is_active(self, moment: datetime, duration: timedelta) -> bool:
        """Whether a window that opens at each start and lasts ``duration`` (elapsed time) covers
        ``moment``: start inclusive, end exclusive."""
        if duration <= timedelta(0):
            raise ValueError(f"expected a positive duration, got {duration}")
        start = self.latest_at_or_before(moment)
        return start is not None and _utc(moment) < start.astimezone(UTC) + duration

    def starts_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every start in ``[start, end)``, in time order, in the schedule's zone."""
        lo, hi = _utc(start), _utc(end)
        first = lo.astimezone(self.zone).date() - _DAY
        for starts in self._days_starts(first, (hi.astimezone(self.zone).date() - first).days + 2, 1):
            for moment in starts[bisect_left(starts, lo):]:
                if moment >= hi:
                    return
                yield moment.astimezone(self.zone)

    # ------------------------------------------------------------------ internals (UTC instants)

    def _runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (by_date or by_weekday) if self.either_day else (by_date and by_weekday)

    def _days_starts(self, first: date, days: int, step: int) -> Iterator[list[datetime]]:
        """The starts of each day it runs on, from ``first`` forwards (``step`` 1) or backwards (-1):
        sorted lists, each wholly before (forwards) or after (backwards) the next one.

        A fall-back that straddles midnight (America/St_Johns until 2011) interleaves the starts of
        two adjacent days, never of days further apart; so a day's list is held back until the
        next day's is known, and the two are merged when they overlap."""
        held: list[datetime] = []
        for n in range(days):
            day = first + n * step * _DAY
            if not self._runs_on(day):
                continue
            starts = self._starts_on(day)
            if held and starts and (starts[0] <= held[-1] if step > 0 else starts[-1] >= held[0]):
                merged = sorted(set(held).union(starts))
                cut = merged.index(held[-1]) + 1 if step > 0 else merged.index(held[0])
                held, starts = (merged[:cut], merged[cut:]) if step > 0 else (merged[cut:], merged[:cut])
            if held:
                yield held
            held = starts
        if held:
            yield held

    def _starts_on(self, day: date) -> list[datetime]:
        offset = datetime.combine(day, time(), self.zone).utcoffset()  # at the day's first instant
        after = datetime.combine(day + _DAY, time(fold=1), self.zone).utcoffset()  # and at its last
        if offset is not None and offset == after:
            # No change of offset this day (the common case): local time minus one offset.
            base = datetime.combine(day, time(), UTC) - offset
            return [base + t for t in self.times]
        midnight = datetime.combine(day, time())
        return sorted({s for t in self.times for s in self._instants(midnight + t)})

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants a naive local start time stands for, by the DST rule above."""
        first, second = wall.replace(tzinfo=self.zone), wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        if _exists(first):  # shown twice: fold=0 is the earlier instant
            return [first.astimezone(UTC)] + ([second.astimezone(UTC)] if self.wildcard else [])
        if self.wildcard:
            return []
        while not _exists(first):  # skipped: the first minute the clock shows after the gap
            first += _MINUTE
        return [first.astimezone(UTC)]
