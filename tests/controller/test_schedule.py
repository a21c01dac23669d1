"""Cron schedules: cron(8) semantics, DST, the APScheduler adapter, and croniter as a reference."""

from __future__ import annotations

import pickle
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from croniter import croniter
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from controller.schedule import LOOKBACK, CronSchedule
from controller.schedule_trigger import CronScheduleTrigger

BERLIN, NEW_YORK, MOSCOW = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Europe/Moscow")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(expr: str, timezone: str, start: datetime, end: datetime) -> list[datetime]:
    """The starts in [start, end) as UTC instants (two datetimes in one zone compare by wall time)."""
    return [s.astimezone(UTC) for s in CronSchedule.parse(expr, timezone).starts_between(start, end)]


def weekdays(expr: str) -> list[str]:
    """The days of the week a daily-at-midnight expression fires on, over one week from a Sunday."""
    return [s.strftime("%a") for s in starts(expr, "UTC", utc(2026, 3, 1), utc(2026, 3, 8))]


# ------------------------------------------------------------------ fields


@pytest.mark.parametrize(("weekday", "days"), [
    ("*/2", "Sun Tue Thu Sat"),  # cron(8) counts from Sunday = 0; APScheduler 3 gave Mon Wed Fri Sun
    ("1-5/2", "Mon Wed Fri"),
    ("*/3", "Sun Wed Sat"),
    ("0-6", "Sun Mon Tue Wed Thu Fri Sat"),
    ("0-7", "Sun Mon Tue Wed Thu Fri Sat"),
    ("1-5", "Mon Tue Wed Thu Fri"),
    ("5-7", "Sun Fri Sat"),
    ("7", "Sun"),
    ("0", "Sun"),
    ("0,7", "Sun"),
    ("sun", "Sun"),
    ("SAT,sun", "Sun Sat"),
    ("mon-fri", "Mon Tue Wed Thu Fri"),
    ("Mon-Fri/2", "Mon Wed Fri"),
    ("fri-7", "Sun Fri Sat"),
])
def test_day_of_week_counts_from_sunday_0_and_7_is_sunday_too(weekday: str, days: str) -> None:
    assert weekdays(f"0 0 * * {weekday}") == days.split()


def test_steps_count_from_the_start_of_their_range() -> None:
    hour = CronSchedule.parse("5-59/20 * * * *", "UTC")
    assert [s.minute for s in hour.starts_between(utc(2026, 1, 1), utc(2026, 1, 1, 1))] == [5, 25, 45]
    quarters = starts("0 0 1 jan-dec/3 *", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    assert [s.month for s in quarters] == [1, 4, 7, 10]


@pytest.mark.parametrize(("shortcut", "expr"), [
    ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@HOURLY", "0 * * * *"),
])
def test_shortcuts_stand_for_their_five_fields(shortcut: str, expr: str) -> None:
    span = (utc(2025, 12, 30), utc(2027, 1, 2))
    assert starts(shortcut, "UTC", *span) == starts(expr, "UTC", *span)


@pytest.mark.parametrize(("expr", "message"), [
    ("0 0 * * 6-0", "day of week range 6-0 runs backwards: ranges do not wrap around, write 6-7"),
    ("0 0 * * sat-sun", "day of week range sat-sun runs backwards"),
    ("0 22-2 * * *", "hour range 22-2 runs backwards: ranges do not wrap around, write 22-23,0-2"),
    ("0 0 * * 8", "day of week 8 out of range 0-7 (0 and 7 are Sunday)"),
    ("60 * * * *", "minute 60 out of range 0-59"),
    ("0 24 * * *", "hour 24 out of range 0-23"),
    ("0 0 0 * *", "day of month 0 out of range 1-31"),
    ("0 0 32 * *", "day of month 32 out of range 1-31"),
    ("0 0 * 13 *", "month 13 out of range 1-12 (or jan-dec)"),
    ("0 0 * * monday", "day of week 'monday' is not a number or a name sun-sat"),
    ("0 0 * foo *", "month 'foo' is not a number or a name jan-dec"),
    ("jan 0 * * *", "minute 'jan' is not a number"),
    ("*/0 * * * *", "minute step 0 in '*/0' out of range 1-60"),
    ("*/61 * * * *", "minute step 61 in '*/61' out of range 1-60"),
    ("5/2 * * * *", "minute '5/2': a step needs a range or * before it, e.g. 5-59/2"),
    ("1,,2 * * * *", "minute '' is not a number, a range a-b, * or a step"),
    ("-5 * * * *", "minute '-5' is not a number"),
    ("0 0 L * *", "day of month 'L' is not a number"),
    ("0 0 * * 5#2", "day of week '5#2' is not a number"),
    ("0 0 * *", "got 4 fields, expected 5 fields (minute hour day-of-month month day-of-week)"),
    ("0 0 0 * * *", "got 6 fields, expected 5 fields"),
    ("", "got 0 fields, expected 5 fields"),
    ("@reboot", "@reboot runs at boot, not on a schedule"),
    ("@fortnightly", "unknown shortcut '@fortnightly': expected 5 fields"),
    ("0 0 30 2 *", "day of month 30 never occurs in month 2: the schedule would never start"),
    ("0 0 31 apr,jun *", "day of month 31 never occurs in month apr,jun"),
])
def test_refused_expressions_say_what_is_wrong_and_what_is_expected(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        CronSchedule.parse(expr, "UTC")


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus': expected an IANA name"):
        CronSchedule.parse("0 3 * * *", "Mars/Olympus")


def test_a_schedule_is_a_frozen_value() -> None:
    one, other = (CronSchedule.parse("0 3 * * 6", "Europe/Moscow") for _ in range(2))
    assert one == other and hash(one) == hash(other)
    assert repr(one) == "CronSchedule(expr='0 3 * * 6', timezone='Europe/Moscow')"
    assert pickle.loads(pickle.dumps(one)) == one  # noqa: S301  # our own bytes
    with pytest.raises(AttributeError):
        one.expr = "0 4 * * 6"  # type: ignore[misc]  # the point: it is frozen


# ------------------------------------------------------------------ day of month OR day of week


def test_both_days_restricted_means_either_matches() -> None:
    fired = starts("0 0 13 * 5", "UTC", utc(2026, 3, 1), utc(2026, 4, 1))
    assert [s.day for s in fired] == [6, 13, 20, 27]  # Fridays, plus the 13th (a Friday too)
    fired = starts("0 0 1,15 * 3", "UTC", utc(2026, 5, 1), utc(2026, 6, 1))
    assert [s.day for s in fired] == [1, 6, 13, 15, 20, 27]  # the 1st, the 15th and the Wednesdays
    every_day = starts("0 0 1 * 0-6", "UTC", utc(2026, 4, 1), utc(2026, 5, 1))
    assert len(every_day) == 30  # 0-6 does not start with "*": restricted, so OR


def test_a_field_starting_with_star_is_unrestricted_so_both_must_match() -> None:
    # crontab(5): "restricted (i.e., don't start with *)": */2 is unrestricted, the days intersect
    fired = starts("0 0 13 * */2", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    assert [f"{s:%b %a}" for s in fired] == ["Jan Tue", "Jun Sat", "Aug Thu", "Sep Sun", "Oct Tue", "Dec Sun"]
    fired = starts("0 0 */2 * 1", "UTC", utc(2026, 6, 1), utc(2026, 7, 1))
    assert [s.day for s in fired] == [1, 15, 29]  # odd days that are Mondays


# ------------------------------------------------------------------ looking back and ahead


def test_next_after_is_strictly_after_and_in_the_schedules_zone() -> None:
    schedule = CronSchedule.parse("0 3 * * 6", "Europe/Moscow")
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=MOSCOW)
    assert schedule.next_after(saturday - timedelta(microseconds=1)) == saturday
    nxt = schedule.next_after(saturday)
    assert nxt.tzinfo == MOSCOW and nxt == saturday + timedelta(days=7)
    with pytest.raises(ValueError, match="expected an aware datetime"):
        schedule.next_after(datetime(2026, 11, 28, 3, 0))


def test_latest_at_or_before_finds_weekly_monthly_and_yearly_starts() -> None:
    wednesday = utc(2026, 12, 2, 12, 0)
    assert CronSchedule.parse("0 0 * * 6", "UTC").latest_at_or_before(wednesday) == utc(2026, 11, 28)
    assert CronSchedule.parse("@monthly", "UTC").latest_at_or_before(wednesday) == utc(2026, 12, 1)
    assert CronSchedule.parse("0 3 1 1 *", "UTC").latest_at_or_before(wednesday) == utc(2026, 1, 1, 3)
    on_start = utc(2026, 11, 28)
    assert CronSchedule.parse("0 0 * * 6", "UTC").latest_at_or_before(on_start) == on_start


def test_29_february_is_found_years_later() -> None:
    leap = CronSchedule.parse("0 3 29 2 *", "Europe/Moscow")
    assert leap.latest_at_or_before(utc(2031, 6, 1)) == datetime(2028, 2, 29, 3, tzinfo=MOSCOW)
    assert leap.next_after(utc(2028, 3, 1)) == datetime(2032, 2, 29, 3, tzinfo=MOSCOW)
    # 2100 is no leap year: eight years between 2096 and 2104, still within the look-back
    assert leap.latest_at_or_before(utc(2103, 12, 31)) == datetime(2096, 2, 29, 3, tzinfo=MOSCOW)
    assert leap.next_after(utc(2097, 1, 1)) == datetime(2104, 2, 29, 3, tzinfo=MOSCOW)


def test_nothing_within_the_look_back_is_none() -> None:
    # a 29 February that is a Sunday (day of week "*/7" is unrestricted: both must match)
    rare = CronSchedule.parse("0 0 29 2 */7", "UTC")
    assert rare.latest_at_or_before(utc(2030, 1, 1)) is None  # 2004-02-29 is older than LOOKBACK
    assert rare.next_after(utc(2030, 1, 1)) == utc(2032, 2, 29)
    assert rare.latest_at_or_before(utc(2032, 3, 1)) == utc(2032, 2, 29)


def test_is_active_covers_start_inclusive_end_exclusive() -> None:
    window = CronSchedule.parse("0 22 * * 6", "Europe/Moscow")  # Saturday 22:00 for 4 hours
    start = datetime(2026, 11, 28, 22, 0, tzinfo=MOSCOW)
    hours = timedelta(hours=4)
    assert not window.is_active(start - timedelta(microseconds=1), hours)
    assert window.is_active(start, hours)
    assert window.is_active(start + timedelta(hours=3, minutes=59), hours)  # past midnight: Sunday
    assert not window.is_active(start + hours, hours)
    assert window.is_active(start + timedelta(days=2), timedelta(days=3))
    with pytest.raises(ValueError, match="expected a positive duration"):
        window.is_active(start, timedelta(0))


def test_starts_between_is_half_open_and_in_order() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    schedule = CronSchedule.parse("*/20 9-10 * * *", "Asia/Kolkata")
    fired = schedule.starts_between(datetime(2026, 5, 4, 9, 20, tzinfo=kolkata),
                                    datetime(2026, 5, 4, 10, 40, tzinfo=kolkata))
    assert [f"{s:%H:%M}" for s in fired] == ["09:20", "09:40", "10:00", "10:20"]


# ------------------------------------------------------------------ daylight saving time


def test_moscow_has_no_dst_now_so_nothing_moves_on_european_change_days() -> None:
    for day in (datetime(2026, 3, 29), datetime(2026, 10, 25)):
        local = day.replace(tzinfo=MOSCOW)
        fired = starts("30 2 * * *", "Europe/Moscow", local, local + timedelta(days=1))
        assert fired == [day.replace(hour=2, minute=30, tzinfo=MOSCOW).astimezone(UTC)]
        assert fired[0].hour == 23  # UTC+3 all year


def test_moscow_2014_fall_back_runs_a_fixed_time_once() -> None:
    # 26 Oct 2014: 02:00 MSK (UTC+4) became 01:00 (UTC+3), for good
    fired = starts("30 1 * * *", "Europe/Moscow", utc(2014, 10, 25, 12), utc(2014, 10, 26, 12))
    assert fired == [utc(2014, 10, 25, 21, 30)]


def test_spring_forward_fixed_time_in_the_gap_runs_once_right_after_it() -> None:
    day = (utc(2026, 3, 28, 22), utc(2026, 3, 29, 22))  # Berlin: 02:00 CET -> 03:00 CEST (01:00 UTC)
    assert starts("30 2 * * *", "Europe/Berlin", *day) == [utc(2026, 3, 29, 1)]
    assert starts("0,15,30,45 2 * * *", "Europe/Berlin", *day) == [utc(2026, 3, 29, 1)]  # once, not 4 times
    assert starts("0 2,3 * * *", "Europe/Berlin", *day) == [utc(2026, 3, 29, 1)]  # 02:00 moved onto 03:00
    ny = CronSchedule.parse("0 2 * * *", "America/New_York")  # 8 Mar 2026: 02:00 EST -> 03:00 EDT
    assert ny.next_after(datetime(2026, 3, 8, 1, tzinfo=NEW_YORK)) == datetime(2026, 3, 8, 3, tzinfo=NEW_YORK)
    assert ny.latest_at_or_before(utc(2026, 3, 8, 12)) == utc(2026, 3, 8, 7)
    # a window opened late closes after its duration of elapsed time
    berlin = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    assert berlin.is_active(utc(2026, 3, 29, 2, 59), timedelta(hours=2))
    assert not berlin.is_active(utc(2026, 3, 29, 3, 0), timedelta(hours=2))


def test_spring_forward_wildcard_starts_in_the_gap_are_skipped() -> None:
    day = (utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))  # Berlin 00:00 CET .. 05:00 CEST
    assert starts("30 * * * *", "Europe/Berlin", *day) == [utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 0, 30),
                                                          utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30)]
    assert starts("*/30 2 * * *", "Europe/Berlin", *day) == []


def test_fall_back_fixed_time_runs_at_the_first_occurrence_only() -> None:
    # Berlin 25 Oct 2026: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:30 is shown at 00:30 and 01:30 UTC
    fixed = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    fired = starts("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 22), utc(2026, 10, 25, 22))
    assert fired == [utc(2026, 10, 25, 0, 30)]
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)
    assert fixed.next_after(second_pass).astimezone(UTC) == utc(2026, 10, 26, 1, 30)
    latest = fixed.latest_at_or_before(utc(2026, 10, 25, 12))
    assert latest is not None and latest.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    # New York 1 Nov 2026: 02:00 EDT -> 01:00 EST; 01:30 is shown at 05:30 and 06:30 UTC
    fired = starts("30 1 * * *", "America/New_York", utc(2026, 11, 1), utc(2026, 11, 2))
    assert fired == [utc(2026, 11, 1, 5, 30)]


def test_fall_back_wildcard_starts_run_in_both_passes() -> None:
    fired = starts("30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    assert fired == [utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30),
                     utc(2026, 10, 25, 2, 30)]
    shown = [f"{s.astimezone(BERLIN):%H:%M%z}" for s in fired]
    assert shown == ["01:30+0200", "02:30+0200", "02:30+0100", "03:30+0100"]
    assert len(starts("*/20 1 * * *", "America/New_York", utc(2026, 11, 1), utc(2026, 11, 2))) == 6
    hourly = CronSchedule.parse("@hourly", "Europe/Berlin")
    latest = hourly.latest_at_or_before(utc(2026, 10, 25, 1, 59))  # 02:59 CET, the second pass
    assert latest is not None and f"{latest:%H:%M%z}" == "02:00+0100"


# ------------------------------------------------------------------ APScheduler adapter


def _noop() -> None:
    return None


def test_trigger_fires_on_cron_days_and_pickles_as_its_expression() -> None:
    trigger = CronScheduleTrigger(CronSchedule.parse("0 3 * * */2", "Europe/Berlin"))
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, friday)
    assert first == datetime(2026, 3, 7, 3, 0, tzinfo=BERLIN)  # Saturday, not APScheduler's Sunday
    assert trigger.get_next_fire_time(first, friday) == datetime(2026, 3, 8, 3, 0, tzinfo=BERLIN)
    assert trigger.get_next_fire_time(None, first) == first  # "at or after now" without a previous fire
    copy = pickle.loads(pickle.dumps(trigger))  # noqa: S301  # our own bytes
    assert copy.schedule == trigger.schedule and copy.get_next_fire_time(None, friday) == first
    assert str(copy) == "cron[0 3 * * */2] Europe/Berlin"


@pytest.mark.parametrize("store", ["memory", "sqlalchemy"])
def test_scheduler_computes_next_run_time_from_the_trigger(store: str, tmp_path: Path) -> None:
    schedule = CronSchedule.parse("0 3 29 2 *", "Europe/Moscow")
    jobstore = MemoryJobStore() if store == "memory" else SQLAlchemyJobStore(url=f"sqlite:///{tmp_path}/jobs.db")
    scheduler = BackgroundScheduler(jobstores={"default": jobstore}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        expected = schedule.next_after(datetime.now(UTC))
        scheduler.add_job(_noop, CronScheduleTrigger(schedule), id="leap")
        job = scheduler.get_job("leap")  # the SQLAlchemy store unpickles it here
        assert job.next_run_time == expected
        assert isinstance(job.trigger, CronScheduleTrigger) and job.trigger.schedule == schedule
    finally:
        scheduler.shutdown(wait=False)


# ------------------------------------------------------------------ croniter as the reference
#
# Expressions are generated only where cron(8) and croniter (with implement_cron_bug=True, which is
# crontab(5)'s rule that a day field starting with "*" is unrestricted) are documented to agree:
# - "*" and "*/n" appear only as a whole field: croniter decides "restricted" per expanded field
#   (a full day-of-month list counts as "*" when the weekday field contains a "*" anywhere);
# - ranges have first < last: croniter reads "a-a" as the whole field, cron(8) as just a;
# - no "a/n" (croniter: a-max/n; cron(8) refuses it) and no wrapping ranges (croniter wraps;
#   crontab(5) has none, we refuse them); steps are at most the field's size.
# DST: croniter moves wildcard starts in a spring-forward gap onto the end of the gap, skips the
# second pass of a repeated hour for wildcard starts, and runs fixed-time starts in both passes,
# all unlike cron(8). So a comparison is skipped when the start instant or either answer lies
# within 3 hours of an offset change; the explicit DST tests above cover our rule there.

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Europe/Moscow", "Asia/Kolkata")
MONTH_NAMES = dict(enumerate(("jan", "feb", "mar", "apr", "may", "jun",
                              "jul", "aug", "sep", "oct", "nov", "dec"), 1))
DAY_NAMES = dict(enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat")))


@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int, names: dict[int, str] | None = None) -> str:
    def token(value: int) -> str:
        if names and value in names and draw(st.booleans()):
            return str(draw(st.sampled_from((str.lower, str.upper, str.title)))(names[value]))
        return str(value)

    steps = st.integers(1, high - low + 1)
    kind = draw(st.sampled_from(("*", "*/n", "list", "list", "list")))
    if kind == "*":
        return "*"
    if kind == "*/n":
        return f"*/{draw(steps)}"
    items = []
    for _ in range(draw(st.integers(1, 3))):
        first = draw(st.integers(low, high))
        if first == high or draw(st.booleans()):
            items.append(token(first))
            continue
        item = f"{token(first)}-{token(draw(st.integers(first + 1, high)))}"
        items.append(item + (f"/{draw(steps)}" if draw(st.booleans()) else ""))
    return ",".join(items)


@st.composite
def schedules(draw: st.DrawFn) -> CronSchedule:
    expr = " ".join((draw(cron_field(0, 59)), draw(cron_field(0, 23)), draw(cron_field(1, 31)),
                     draw(cron_field(1, 12, MONTH_NAMES)), draw(cron_field(0, 7, DAY_NAMES))))
    try:
        return CronSchedule.parse(expr, draw(st.sampled_from(ZONES)))
    except ValueError as exc:  # only day-of-month/month pairs that never occur (31 apr) are refused
        assert "never occurs" in str(exc)
        reject()


instants = st.datetimes(datetime(2016, 1, 1), datetime(2034, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))
reference = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def near_offset_change(schedule: CronSchedule, *moments: datetime) -> bool:
    margin, zone = timedelta(hours=3), schedule.zone
    return any((m - margin).astimezone(zone).utcoffset() != (m + margin).astimezone(zone).utcoffset()
               for m in moments)


def croniter_from(schedule: CronSchedule, moment: datetime) -> croniter:
    local = moment.astimezone(schedule.zone)
    return croniter(schedule.expr, local, ret_type=datetime, implement_cron_bug=True)


@reference
@given(schedules(), instants)
def test_next_after_agrees_with_croniter(schedule: CronSchedule, start: datetime) -> None:
    moment = start
    for _ in range(6):
        ours = schedule.next_after(moment).astimezone(UTC)
        theirs = croniter_from(schedule, moment).get_next().astimezone(UTC)
        if not near_offset_change(schedule, moment, ours, theirs):
            assert ours == theirs, f"{schedule.expr!r} in {schedule.timezone} after {moment.isoformat()}"
        moment = ours


@reference
@given(schedules(), instants)
def test_latest_at_or_before_agrees_with_croniter(schedule: CronSchedule, start: datetime) -> None:
    moment = start
    for _ in range(6):
        found = schedule.latest_at_or_before(moment)
        # croniter's get_prev is strictly before its start; ours includes the moment itself
        theirs = croniter_from(schedule, moment + timedelta(microseconds=1)).get_prev().astimezone(UTC)
        if found is None:
            assert moment - theirs > LOOKBACK
            return
        ours = found.astimezone(UTC)
        if not near_offset_change(schedule, moment, ours, theirs):
            assert ours == theirs, f"{schedule.expr!r} in {schedule.timezone} before {moment.isoformat()}"
        moment = ours - timedelta(microseconds=1)


# ------------------------------------------------------------------ DST against cron(8)'s own clock loop
#
# cron(8) (Vixie cron.c, main loop) walks wall-clock minutes: when the clock jumps ahead by 6 min
# to 3 h it runs wildcard jobs for the new minute and fixed-time jobs for every skipped minute; when
# it goes back by up to 3 h it runs only wildcard jobs until the clock has caught up. This simulates
# that loop minute by minute of real time around real transitions (30-minute ones in Lord Howe, one
# straddling midnight in St John's) and holds all three lookups to it. The one difference we keep:
# several fixed-time starts skipped by one jump start once (cron(8) runs the job once per skipped
# start, seconds apart), so the simulation records at most one start per minute.

MINUTE = timedelta(minutes=1)
TRANSITIONS = (  # instants (UTC) at which the zone's offset changes
    ("Europe/Berlin", utc(2026, 3, 29, 1)), ("Europe/Berlin", utc(2026, 10, 25, 1)),
    ("America/New_York", utc(2026, 3, 8, 7)), ("America/New_York", utc(2026, 11, 1, 6)),
    ("Australia/Sydney", utc(2026, 4, 4, 16)), ("Australia/Sydney", utc(2026, 10, 3, 16)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)), ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),
    ("Europe/Moscow", utc(2011, 3, 26, 23)), ("Europe/Moscow", utc(2014, 10, 25, 22)),
    ("America/St_Johns", utc(2010, 11, 7, 2, 31)),
)


def of_day(wall: datetime) -> timedelta:
    return timedelta(hours=wall.hour, minutes=wall.minute)


def cron8_starts(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """The minutes in (start, end) at which cron(8) starts a job that runs every day."""
    times, zone, runs = set(schedule.times), schedule.zone, []
    virtual = start.astimezone(zone).replace(tzinfo=None)
    moment = start + MINUTE
    while moment < end:
        clock = moment.astimezone(zone).replace(tzinfo=None)
        ahead = (clock - virtual) // MINUTE
        if ahead == 1:
            due = of_day(clock) in times
        elif ahead > 1:  # sprang forward
            skipped = (virtual + k * MINUTE for k in range(1, ahead + 1))
            due = of_day(clock) in times if schedule.wildcard else any(of_day(w) in times for w in skipped)
        else:  # fell back: until the clock catches up, only wildcard jobs
            due = schedule.wildcard and of_day(clock) in times
        virtual = max(virtual, clock)
        if due:
            runs.append(moment)
        moment += MINUTE
    return runs


# the hours around transitions, often: random hour fields seldom hit them
hour_fields = st.one_of(cron_field(0, 23), st.sampled_from(("*", "1", "2", "3", "1-3", "*/2", "0-4/2")))
minute_fields = st.one_of(cron_field(0, 59), st.sampled_from(("*", "0", "30", "0,30", "*/15", "15-45/10")))
probes = st.lists(st.integers(0, 6 * 3600 - 1), max_size=4)  # seconds into the six hours around a change


@settings(max_examples=150, deadline=None)
@given(minute_fields, hour_fields, st.sampled_from(TRANSITIONS), probes)
def test_dst_follows_cron8s_clock_loop(minute: str, hour: str, transition: tuple[str, datetime],
                                       seconds: list[int]) -> None:
    timezone, change = transition
    schedule = CronSchedule.parse(f"{minute} {hour} * * *", timezone)
    assert near_offset_change(schedule, change)
    start, end = change - timedelta(hours=3), change + timedelta(hours=3)
    expected = cron8_starts(schedule, start, end)
    assert [s.astimezone(UTC) for s in schedule.starts_between(start + MINUTE, end)] == expected
    for moment in [start + timedelta(seconds=s) for s in seconds] + expected[:3] + expected[-3:]:
        later = [s for s in expected if s > moment]
        if later:
            assert schedule.next_after(moment).astimezone(UTC) == later[0]
        earlier = [s for s in expected if s <= moment]
        if earlier:
            assert schedule.latest_at_or_before(moment).astimezone(UTC) == earlier[-1]  # type: ignore[union-attr]
