"""Schedules: 5-field cron expressions (6 with a leading seconds field), `@hourly`-style macros and
`@every 5s` intervals.

    ┌ second (0-59, only in the 6-field form)
    │  ┌ minute (0-59)  ┌ hour (0-23)  ┌ day of month (1-31)  ┌ month (1-12 or JAN-DEC)  ┌ day of week (0-7 or SUN-SAT; 0 and 7 are Sunday)
    [*] *                *              *                      *                          *

Each field is `*`, a number or name, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list
of those. With five fields a schedule fires at second 0. The day fields also take (Quartz style):
`L` (day of month: the last day), `LW` (the last weekday, Mon-Fri), `15W` (the weekday nearest the
15th, within the same month), `5L` (day of week: the last Friday of the month), `5#2` (the second
Friday) and `?` (same as `*`).

Day of month and day of week combine as in Vixie cron: if either field starts with `*` (so `*` and
`*/2` alike) a day must match both; otherwise (both restricted) a day matches if *either* does.

Next fire times are computed in the schedule's time zone (`zoneinfo`) on wall-clock time, with
daylight-saving changes handled the way cron users expect:

- a wall time skipped by a spring-forward change (02:30 in Europe/Berlin on the last Sunday of
  March) fires once, at the end of the gap (03:00 local);
- a wall time that occurs twice (autumn fall-back) fires once, at its first occurrence, for
  schedules with a fixed hour; schedules whose hour field is `*` fire at both occurrences, so that
  "every 15 minutes" stays every 15 minutes in real time.

`@every <duration>` fires at every multiple of the duration since the Unix epoch (time-zone
independent), so every scheduler computes the same fire times.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..spec import finite_number

MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
DAY_NAMES = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: How far ahead the search looks before deciding an expression never fires (dates and weekdays
#: line up again within 28 years, 40 across a century that is not a leap year).
SEARCH_YEARS = 40
#: Clock changes shift wall time by at most this much (real zones: up to 2 h, plus margin).
DST_HORIZON_HOURS = 3


class ScheduleError(ValueError):
    """A schedule expression or time zone that cannot be used; the message says why."""


def parse_duration(value: str | int | float) -> float:
    """'90s', '1m30s', '2h', '500ms', or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ScheduleError("expected a duration such as 30s, 5m or 1h30m")
    if isinstance(value, (int, float)):
        if not finite_number(value):
            raise ScheduleError(f"duration must be a finite number of seconds, got {value}")
        if value <= 0:
            raise ScheduleError(f"duration must be positive, got {value}")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text or DURATION_RE.sub("", text):
        try:
            number = float(text)
        except ValueError:
            raise ScheduleError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h30m, 500ms)") from None
        return parse_duration(number)
    total = sum(float(n) * DURATION_UNITS[u] for n, u in DURATION_RE.findall(text))
    if not finite_number(total):
        raise ScheduleError(f"duration must be a finite number of seconds, got {value!r}")
    if total <= 0:
        raise ScheduleError(f"duration must be positive, got {value!r}")
    return total


def load_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from None


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


SECOND = Field("second", 0, 59)
FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day of month", 1, 31),
    Field("month", 1, 12, MONTH_NAMES),
    Field("day of week", 0, 7, DAY_NAMES),
)
NEAREST_WEEKDAY_RE = re.compile(r"(\d+)W")
NTH_WEEKDAY_RE = re.compile(r"(\w+)#(\d+)")
LAST_WEEKDAY_RE = re.compile(r"(\w+)L")


def _value(text: str, field: Field) -> int:
    upper = text.upper()
    if field.names and upper in field.names:
        return field.names[upper]
    if not text.isdigit():
        raise ScheduleError(f"{field.name}: {text!r} is not a number" + (" or name" if field.names else ""))
    number = int(text)
    if not field.low <= number <= field.high:
        raise ScheduleError(f"{field.name}: {number} is out of range {field.low}-{field.high}")
    return number


def _items(text: str, field: Field) -> list[str]:
    parts = text.split(",")
    if not all(parts):
        raise ScheduleError(f"{field.name}: empty list item in {text!r}")
    return parts


def _part_values(part: str, field: Field) -> range:
    """One list item (`*`, `a`, `a-b`, with an optional `/n` step) -> the values it matches."""
    body, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise ScheduleError(f"{field.name}: step {step_text!r} must be a whole number >= 1")
        step = int(step_text)
    if body in ("*", "?"):
        low, high = field.low, field.high
    elif "-" in body:
        a, _, b = body.partition("-")
        low, high = _value(a, field), _value(b, field)
        if low > high:
            raise ScheduleError(f"{field.name}: range {body!r} runs backwards")
    else:
        low = _value(body, field)
        high = field.high if slash else low  # 'a/n' means a, a+n, … up to the maximum
    return range(low, high + 1, step)


def _sunday_is_zero(values) -> frozenset[int]:
    return frozenset(0 if v == 7 else v for v in values)


def parse_field(text: str, field: Field) -> frozenset[int]:
    """One cron field (without the L, W and # forms) -> the set of values it matches."""
    values = {v for part in _items(text, field) for v in _part_values(part, field)}
    return _sunday_is_zero(values) if field.name == "day of week" else frozenset(values)


def _nearest_weekday(day: date, target: int) -> int | None:
    """`targetW`: the weekday (Mon-Fri) nearest the target day, never leaving the month."""
    last = calendar.monthrange(day.year, day.month)[1]
    if target > last:
        return None
    weekday = date(day.year, day.month, target).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or Monday the 3rd for the 1st
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before at the end of the month
        return target + 1 if target < last else target - 2
    return target


@dataclass(frozen=True)
class MonthDays:
    """The day-of-month field: plain days plus `L`, `LW` and `nW`."""
    days: frozenset[int]
    last: bool = False
    last_weekday: bool = False
    nearest_weekday: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str, field: Field) -> MonthDays:
        days, last, last_weekday, nearest = set(), False, False, set()
        for part in _items(text, field):
            upper = part.upper()
            if upper == "L":
                last = True
            elif upper == "LW":
                last_weekday = True
            elif m := NEAREST_WEEKDAY_RE.fullmatch(upper):
                nearest.add(_value(m.group(1), field))
            else:
                days.update(_part_values(part, field))
        return cls(frozenset(days), last, last_weekday, frozenset(nearest))

    def matches(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if day.day in self.days or (self.last and day.day == last):
            return True
        if self.last_weekday and day.day == _nearest_weekday(day, last):
            return True
        return any(day.day == _nearest_weekday(day, t) for t in self.nearest_weekday)


@dataclass(frozen=True)
class WeekDays:
    """The day-of-week field: plain weekdays (0 = Sunday) plus `5L` (last Friday) and `5#2`."""
    weekdays: frozenset[int]
    last_of: frozenset[int] = frozenset()
    nth_of: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def parse(cls, text: str, field: Field) -> WeekDays:
        weekdays, last_of, nth_of = set(), set(), set()
        for part in _items(text, field):
            if m := NTH_WEEKDAY_RE.fullmatch(part):
                n = int(m.group(2))
                if not 1 <= n <= 5:
                    raise ScheduleError(f"{field.name}: in {part!r} the week number must be 1-5")
                nth_of.add((_value(m.group(1), field), n))
            elif m := LAST_WEEKDAY_RE.fullmatch(part.upper()):
                last_of.add(_value(m.group(1), field))
            else:
                weekdays.update(_part_values(part, field))
        return cls(_sunday_is_zero(weekdays), _sunday_is_zero(last_of),
                   frozenset((0 if d == 7 else d, n) for d, n in nth_of))

    def matches(self, day: date) -> bool:
        weekday = day.isoweekday() % 7
        if weekday in self.weekdays or (weekday, (day.day - 1) // 7 + 1) in self.nth_of:
            return True
        return weekday in self.last_of and day.day + 7 > calendar.monthrange(day.year, day.month)[1]


class Schedule:
    """Common interface: `next_after(instant) -> instant` (aware datetimes; the result is in UTC and
    strictly later)."""

    expression: str

    def next_after(self, after: datetime) -> datetime:
        raise NotImplementedError

    def fire_times(self, after: datetime, until: datetime):
        """Every fire time in (after, until]."""
        t = self.next_after(after)
        while t <= until:
            yield t
            t = self.next_after(t)


class IntervalSchedule(Schedule):
    """`@every 5s`: every multiple of the interval since the Unix epoch."""

    def __init__(self, expression: str, seconds: float):
        self.expression = expression
        self.seconds = seconds

    def next_after(self, after: datetime) -> datetime:
        ts = after.timestamp()
        n = int(ts // self.seconds) + 1
        nxt = n * self.seconds
        if nxt <= ts:  # float rounding at an exact multiple
            nxt += self.seconds
        return datetime.fromtimestamp(nxt, timezone.utc)

    def __repr__(self) -> str:
        return f"IntervalSchedule({self.expression!r})"


class CronSchedule(Schedule):
    """A cron expression (5 fields, or 6 with seconds first) evaluated in a time zone."""

    def __init__(self, expression: str, tz: ZoneInfo):
        self.expression = expression
        self.tz = tz
        text = MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) not in (5, 6):
            raise ScheduleError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                                f"or 6 with a seconds field first; got {len(parts)} in {expression!r}")
        self.seconds = parse_field(parts.pop(0), SECOND) if len(parts) == 6 else frozenset({0})
        minute, hour, day, month, weekday = FIELDS
        self.minutes, self.hours = parse_field(parts[0], minute), parse_field(parts[1], hour)
        self.days, self.months = MonthDays.parse(parts[2], day), parse_field(parts[3], month)
        self.weekdays = WeekDays.parse(parts[4], weekday)
        self._sorted_minutes = sorted(self.minutes)
        self._sorted_seconds = sorted(self.seconds)
        # Vixie cron: a day field that starts with '*' (or '?') is unrestricted, even '*/2'.
        self.day_restricted = not parts[2].startswith(("*", "?"))
        self.weekday_restricted = not parts[4].startswith(("*", "?"))
        self.every_hour = parts[1] == "*"
        # Fail now, not at the first tick, for expressions such as "0 0 30 2 *".
        self.next_after(datetime(2000, 1, 1, tzinfo=timezone.utc))

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.tz.key!r})"

    def _day_matches(self, day: datetime) -> bool:
        in_month = self.days.matches(day)
        in_week = self.weekdays.matches(day)
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    def _next_wall_minute(self, start: datetime) -> datetime:
        """The first naive wall minute >= start (a whole minute) matching every field but seconds."""
        t = start
        limit = start.year + SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
                continue
            if not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                later = [m for m in self._sorted_minutes if m > t.minute]
                t = t.replace(minute=later[0]) if later else \
                    datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
                continue
            return t
        raise ScheduleError(f"{self.expression!r} never fires (no matching date in {SEARCH_YEARS} years)")

    def _next_wall(self, start: datetime) -> datetime:
        """The first naive wall time >= start (whole seconds) matching every field."""
        minute = start.replace(second=0, microsecond=0)
        while True:
            minute = self._next_wall_minute(minute)
            for second in self._sorted_seconds:
                if minute.replace(second=second) >= start:
                    return minute.replace(second=second)
            minute += timedelta(minutes=1)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The real instants of a wall time: one normally, none in a DST gap, two in a fold."""
        found = []
        for fold in (0, 1):
            candidate = wall.replace(tzinfo=self.tz, fold=fold)
            back = candidate.astimezone(timezone.utc).astimezone(self.tz).replace(tzinfo=None)
            if back == wall and all(candidate.utcoffset() != f.utcoffset() for f in found):
                found.append(candidate)
        return found

    def _end_of_gap(self, wall: datetime) -> datetime:
        t = wall
        while True:
            t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
            instants = self._instants(t)
            if instants:
                return instants[0]

    def _candidates(self, wall: datetime) -> list[datetime]:
        """The instants at which a matching wall time fires (see the DST rules above)."""
        instants = self._instants(wall)
        if not instants:  # skipped by a spring-forward change: fire at the end of the gap
            instants = [self._end_of_gap(wall)]
        elif len(instants) == 2 and not self.every_hour:
            instants = instants[:1]
        # In UTC: aware datetimes sharing one tzinfo compare by wall time, ignoring `fold`.
        return [i.astimezone(timezone.utc) for i in instants]

    def _first_after(self, after: datetime) -> datetime:
        # Start at the current wall second: its second occurrence (in a fold) may still be ahead.
        wall = after.astimezone(self.tz).replace(tzinfo=None, microsecond=0)
        while True:
            wall = self._next_wall(wall)
            for instant in self._candidates(wall):
                if instant > after:
                    return instant
            wall += timedelta(seconds=1)

    def next_after(self, after: datetime) -> datetime:
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        after = after.astimezone(timezone.utc)
        first = self._first_after(after)
        horizon = first + timedelta(hours=DST_HORIZON_HOURS)
        if after.astimezone(self.tz).utcoffset() == horizon.astimezone(self.tz).utcoffset():
            return first
        # A clock change is near: wall-clock order and real order may differ (in a fold, 02:00 of
        # the second pass comes before 02:30 of the first pass in wall order but after it in real
        # time), so take the earliest instant among the wall times up to the horizon.
        best = first
        wall = after.astimezone(self.tz).replace(tzinfo=None, microsecond=0)
        wall -= timedelta(hours=DST_HORIZON_HOURS)  # a fold's second pass repeats earlier wall times
        end = horizon.astimezone(self.tz).replace(tzinfo=None)
        while True:
            wall = self._next_wall(wall)
            if wall > end:
                return best
            for instant in self._candidates(wall):
                if after < instant < best:
                    best = instant
            wall += timedelta(seconds=1)


def parse_schedule(expression: str, tz_name: str = "UTC") -> Schedule:
    """A schedule from its expression: cron fields, a macro, or `@every <duration>`."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("empty schedule")
    text = expression.strip()
    if text.lower().startswith("@every"):
        rest = text[len("@every"):].strip()
        if not rest:
            raise ScheduleError("@every needs a duration, e.g. '@every 5s' or '@every 1h30m'")
        seconds = parse_duration(rest)
        if seconds < 1:
            raise ScheduleError(f"@every {rest}: the shortest interval is 1s")
        return IntervalSchedule(text, seconds)
    if text.startswith("@") and text.lower() not in MACROS:
        raise ScheduleError(f"unknown macro {text!r} (known: {', '.join(sorted(MACROS))}, @every <duration>)")
    return CronSchedule(text, load_timezone(tz_name))


def next_fire_times(expression: str, tz_name: str, after: float, count: int = 1) -> list[float]:
    """The next `count` fire times (unix seconds) strictly after `after`: the instants the
    scheduler enqueues, from the same `Schedule.next_after` (`ScheduleError` for a bad schedule)."""
    schedule = parse_schedule(expression, tz_name)
    times: list[float] = []
    instant = datetime.fromtimestamp(after, timezone.utc)
    for _ in range(count):
        instant = schedule.next_after(instant)
        times.append(instant.timestamp())
    return times
