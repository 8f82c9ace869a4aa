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
    ("* * * * * * *", "5 fields"),
    ("60 * * * * *", "second: 60 is out of range"),
    ("0 0 * * 5#6", "week number must be 1-5"),
    ("0 0 32W * *", "out of range"),
    ("0 0 * * 8L", "out of range"),
    ("0 0 XW * *", "not a number"),
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


def fires_s(expression: str, start: datetime, count: int, tz: str = "UTC") -> list[str]:
    """Like fires(), with seconds."""
    schedule, zone, out, t = parse_schedule(expression, tz), ZoneInfo(tz), [], start
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z"))
    return out


MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)  # a Friday
JUNE_1 = datetime(2024, 6, 1, tzinfo=UTC)  # a Saturday

# Expected instants written by hand from a 2024 calendar (cross-checked with croniter where it agrees
# with Vixie cron: it does not treat '*/n' day fields as unrestricted, and has no W).
DAY_RULES = [
    # A day field starting with '*' is unrestricted, so the other one must match too (AND):
    # odd days of the month that are Mondays, not odd days or Mondays.
    ("0 0 */2 * MON", MARCH_1, ["2024-03-11", "2024-03-25", "2024-04-01", "2024-04-15"]),
    # ... and 1st or 15th that is a Sunday, Tuesday, Thursday or Saturday.
    ("0 0 1,15 * */2", MARCH_1, ["2024-06-01", "2024-06-15", "2024-08-01", "2024-08-15"]),
    ("0 0 ? * MON", MARCH_1, ["2024-03-04", "2024-03-11"]),
    # Both restricted: either (OR), also with the new forms.
    ("0 0 L * FRI", datetime(2024, 3, 20, tzinfo=UTC), ["2024-03-22", "2024-03-29", "2024-03-31",
                                                       "2024-04-05"]),
    ("0 0 L * *", datetime(2024, 1, 15, tzinfo=UTC), ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]),
    # Last weekday: March 31 2024 is a Sunday, June 30 a Sunday.
    ("0 0 LW * *", MARCH_1, ["2024-03-29", "2024-04-30", "2024-05-31", "2024-06-28"]),
    # Nearest weekday: June 15 2024 is a Saturday (-> Fri 14), September 15 a Sunday (-> Mon 16).
    ("0 0 15W 6,9 *", MARCH_1, ["2024-06-14", "2024-09-16"]),
    # 1W never leaves the month: June 1 2024 is a Saturday -> Monday June 3, not Friday May 31.
    ("0 0 1W 6 *", MARCH_1, ["2024-06-03"]),
    # 31W: August 31 2024 is a Saturday -> Fri 30; only months with a 31st.
    ("0 0 31W * *", JUNE_1, ["2024-07-31", "2024-08-30", "2024-10-31", "2024-12-31"]),
    ("0 0 * * 5L", MARCH_1, ["2024-03-29", "2024-04-26", "2024-05-31"]),
    ("0 0 * * FRIL", MARCH_1, ["2024-03-29"]),
    ("0 0 * * 5#2", MARCH_1, ["2024-03-08", "2024-04-12", "2024-05-10"]),
    ("0 0 * * MON#1", datetime(2024, 3, 5, tzinfo=UTC), ["2024-04-01", "2024-05-06"]),
    ("0 0 * * 1#5", MARCH_1, ["2024-04-29", "2024-07-29"]),
    ("0 0 * * 7#1", MARCH_1, ["2024-03-03", "2024-04-07"]),
]


@pytest.mark.parametrize("expression, start, expected", DAY_RULES, ids=[r[0] for r in DAY_RULES])
def test_day_rules(expression, start, expected):
    assert [f[:10] for f in fires(expression, start, len(expected))] == expected


def test_seconds_field():
    start = datetime(2024, 3, 1, 10, 0, 5, 500000, tzinfo=UTC)
    assert fires_s("*/20 * * * * *", start, 3) == [
        "2024-03-01 10:00:20 +0000", "2024-03-01 10:00:40 +0000", "2024-03-01 10:01:00 +0000"]
    assert fires_s("30 0 9 * * MON-FRI", start, 2) == ["2024-03-04 09:00:30 +0000", "2024-03-05 09:00:30 +0000"]
    # Five fields fire at second 0.
    assert fires_s("* * * * *", start, 1) == ["2024-03-01 10:01:00 +0000"]


def test_seconds_in_a_spring_forward_gap_fire_at_its_end():
    assert fires_s("30 30 2 * * *", datetime(2024, 3, 30, 12, tzinfo=BERLIN), 2, "Europe/Berlin") == [
        "2024-03-31 03:00:00 +0200", "2024-04-01 02:30:30 +0200"]


def test_rare_schedules_are_found():
    # The second Friday that is also the 13th, in October: years apart (2028 after 2023).
    assert fires("0 0 */6 10 5#2", datetime(2024, 1, 1, tzinfo=UTC), 1) == ["2028-10-13 00:00 +0000"]


def test_next_fire_times_are_the_schedulers_fire_times_in_order():
    from datetime import datetime, timezone

    from cronium.core.deploy.cron import next_fire_times, parse_schedule

    after = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc).timestamp()  # a DST change in Berlin ahead
    times = next_fire_times("30 2 * * *", "Europe/Berlin", after, 3)
    schedule, expected, t = parse_schedule("30 2 * * *", "Europe/Berlin"), [], datetime.fromtimestamp(after, timezone.utc)
    for _ in range(3):
        t = schedule.next_after(t)
        expected.append(t.timestamp())
    assert times == expected and times == sorted(set(times)) and times[0] > after
