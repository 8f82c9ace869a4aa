"""core/deploy/cron.py: fields, macros, intervals, durations and next fire times across DST changes."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from cronium.core.deploy.cron import (
    FIELDS,
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    parse_duration,
    parse_field,
    parse_schedule,
)

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(expression: str, start: datetime, count: int, tz: str = "UTC") -> list[str]:
    schedule = parse_schedule(expression, tz)
    zone = ZoneInfo(tz)
    out, t = [], start
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(t.astimezone(zone).strftime("%Y-%m-%d %H:%M %z"))
    return out


MINUTE, HOUR, DAY, MONTH, WEEKDAY = FIELDS


@pytest.mark.parametrize("text, field, expected", [
    ("*", HOUR, set(range(24))),
    ("5", MINUTE, {5}),
    ("1-4", MINUTE, {1, 2, 3, 4}),
    ("*/15", MINUTE, {0, 15, 30, 45}),
    ("10-30/10", MINUTE, {10, 20, 30}),
    ("50/5", MINUTE, {50, 55}),
    ("1,2,10-12", DAY, {1, 2, 10, 11, 12}),
    ("JAN,mar,Dec", MONTH, {1, 3, 12}),
    ("FEB-APR", MONTH, {2, 3, 4}),
    ("MON-FRI", WEEKDAY, {1, 2, 3, 4, 5}),
    ("7", WEEKDAY, {0}),
    ("SAT,SUN", WEEKDAY, {6, 0}),
])
def test_field_syntax(text, field, expected):
    assert parse_field(text, field) == expected


@pytest.mark.parametrize("expression, message", [
    ("* * * *", "5 fields"),
    ("* * * * * *", "5 fields"),
    ("60 * * * *", "out of range"),
    ("* 24 * * *", "out of range"),
    ("* * 0 * *", "out of range"),
    ("* * * 13 *", "out of range"),
    ("*/0 * * * *", "step"),
    ("5-1 * * * *", "backwards"),
    ("1,,2 * * * *", "empty"),
    ("* * * FOO *", "not a number"),
    ("0 0 30 2 *", "never fires"),
    ("@fortnightly", "unknown macro"),
    ("@every", "needs a duration"),
    ("@every 0s", "positive"),
    ("@every 500ms", "shortest"),
    ("@every soon", "not a duration"),
    ("", "empty"),
])
def test_bad_expressions_say_why(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(expression, "UTC")


def test_unknown_time_zone():
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse_schedule("* * * * *", "Mars/Olympus")


def test_macros():
    start = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)  # a Friday
    assert fires("@hourly", start, 2) == ["2024-03-01 11:00 +0000", "2024-03-01 12:00 +0000"]
    assert fires("@daily", start, 1) == ["2024-03-02 00:00 +0000"]
    assert fires("@midnight", start, 1) == ["2024-03-02 00:00 +0000"]
    assert fires("@weekly", start, 1) == ["2024-03-03 00:00 +0000"]
    assert fires("@monthly", start, 1) == ["2024-04-01 00:00 +0000"]
    assert fires("@yearly", start, 1) == fires("@annually", start, 1) == ["2025-01-01 00:00 +0000"]


def test_next_is_strictly_later_and_steps_work():
    start = datetime(2024, 3, 1, 10, 15, tzinfo=UTC)
    assert fires("*/15 * * * *", start, 3) == ["2024-03-01 10:30 +0000", "2024-03-01 10:45 +0000",
                                               "2024-03-01 11:00 +0000"]
    assert fires("0 9 * * MON-FRI", start, 3) == ["2024-03-04 09:00 +0000", "2024-03-05 09:00 +0000",
                                                  "2024-03-06 09:00 +0000"]


def test_both_day_fields_restricted_match_either():
    # Vixie cron: the 1st and the 15th, and every Friday.
    start = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
    assert fires("0 0 1,15 * FRI", start, 4) == ["2024-03-08 00:00 +0000", "2024-03-15 00:00 +0000",
                                                 "2024-03-22 00:00 +0000", "2024-03-29 00:00 +0000"]


def test_leap_day():
    assert fires("0 0 29 2 *", datetime(2024, 3, 1, tzinfo=UTC), 2) == ["2028-02-29 00:00 +0000",
                                                                        "2032-02-29 00:00 +0000"]


def test_time_zone_wall_clock():
    # 07:00 in Berlin is 06:00 UTC in winter and 05:00 UTC in summer.
    schedule = parse_schedule("0 7 * * *", "Europe/Berlin")
    winter = schedule.next_after(datetime(2024, 1, 10, 12, tzinfo=UTC))
    summer = schedule.next_after(datetime(2024, 7, 10, 12, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (6, 5)
    assert winter.tzinfo is UTC


def test_spring_forward_gap_fires_once_at_its_end():
    # 2024-03-31 02:00-03:00 does not exist in Berlin: 02:30 fires at 03:00 CEST.
    assert fires("30 2 * * *", datetime(2024, 3, 30, 12, tzinfo=BERLIN), 2, "Europe/Berlin") == [
        "2024-03-31 03:00 +0200", "2024-04-01 02:30 +0200"]
    # Several times inside the gap fire once, together, at its end.
    assert fires("*/30 * * * *", datetime(2024, 3, 31, 1, 10, tzinfo=BERLIN), 3, "Europe/Berlin") == [
        "2024-03-31 01:30 +0100", "2024-03-31 03:00 +0200", "2024-03-31 03:30 +0200"]


def test_fall_back_fixed_hour_fires_once():
    # 2024-10-27 02:00-03:00 happens twice in Berlin: a job at 02:30 runs once (the first time).
    assert fires("30 2 * * *", datetime(2024, 10, 26, 12, tzinfo=BERLIN), 2, "Europe/Berlin") == [
        "2024-10-27 02:30 +0200", "2024-10-28 02:30 +0100"]


def test_fall_back_every_hour_keeps_real_time_rhythm():
    assert fires("*/30 * * * *", datetime(2024, 10, 27, 1, 50, tzinfo=BERLIN), 6, "Europe/Berlin") == [
        "2024-10-27 02:00 +0200", "2024-10-27 02:30 +0200", "2024-10-27 02:00 +0100",
        "2024-10-27 02:30 +0100", "2024-10-27 03:00 +0100", "2024-10-27 03:30 +0100"]
    assert fires("15 1 * * *", datetime(2024, 11, 2, 12, tzinfo=NEW_YORK), 2, "America/New_York") == [
        "2024-11-03 01:15 -0400", "2024-11-04 01:15 -0500"]


def test_every_interval_is_aligned_to_the_epoch():
    schedule = parse_schedule("@every 5s")
    assert isinstance(schedule, IntervalSchedule)
    t = schedule.next_after(datetime(2024, 3, 1, 0, 0, 3, 700000, tzinfo=UTC))
    assert t == datetime(2024, 3, 1, 0, 0, 5, tzinfo=UTC)
    assert schedule.next_after(t) == datetime(2024, 3, 1, 0, 0, 10, tzinfo=UTC)
    assert parse_schedule("@every 1h30m").seconds == 5400


def test_fire_times_window():
    schedule = parse_schedule("@every 10s")
    start = datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC)
    end = datetime(2024, 3, 1, 0, 0, 30, tzinfo=UTC)
    assert [t.second for t in schedule.fire_times(start, end)] == [10, 20, 30]


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        CronSchedule("* * * * *", BERLIN).next_after(datetime(2024, 1, 1))


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800),
                                           ("500ms", 0.5), (12, 12), (2.5, 2.5), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "5x", "soon", True])
def test_bad_durations(text):
    with pytest.raises(ScheduleError):
        parse_duration(text)
