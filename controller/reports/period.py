"""A report month in the client's time zone: from local midnight of its first day to local midnight
of the next month's first day, so a month with a DST change has 743 or 745 hours."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTH_FORM = "a month as YYYY-MM, e.g. 2026-11"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class BadMonthError(ValueError):
    """The month string is not ``YYYY-MM`` (the CLI names ``--month``, the API the ``month`` parameter)."""


@dataclass(frozen=True)
class Month:
    label: str  # "2026-11"
    timezone: str
    start: float  # unix seconds of local midnight, first day
    end: float  # unix seconds of local midnight, first day of the next month

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def local(self, stamp: float) -> datetime:
        return datetime.fromtimestamp(stamp, ZoneInfo(self.timezone))


def parse_month(text: str) -> tuple[int, int]:
    """``"2026-11"`` → (2026, 11); BadMonthError naming the expected form otherwise."""
    found = _MONTH.match(text.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
        raise BadMonthError(f"expected {MONTH_FORM}, got {text!r}")
    return int(found.group(1)), int(found.group(2))


def month_in(text: str, timezone: str) -> Month:
    """The month ``text`` (``YYYY-MM``) in ``timezone`` (an IANA name)."""
    year, number = parse_month(text)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}: expected an IANA name such as "
                         "Europe/Moscow") from None
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return Month(f"{year:04d}-{number:02d}", timezone, start.timestamp(), end.timestamp())
