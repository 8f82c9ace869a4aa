"""Schedules: 5-field cron expressions, `@hourly`-style macros and `@every 5s` intervals.

    ┌ minute (0-59)  ┌ hour (0-23)  ┌ day of month (1-31)  ┌ month (1-12 or JAN-DEC)  ┌ day of week (0-7 or SUN-SAT; 0 and 7 are Sunday)
    *                *              *                      *                          *

Each field is `*`, a number or name, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list
of those. As in Vixie cron, when both day fields are restricted a day matches if *either* does.

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

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
#: How far ahead the search looks before deciding an expression never fires (covers Feb 29).
SEARCH_YEARS = 9
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


FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day of month", 1, 31),
    Field("month", 1, 12, MONTH_NAMES),
    Field("day of week", 0, 7, DAY_NAMES),
)


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


def parse_field(text: str, field: Field) -> frozenset[int]:
    """One cron field -> the set of values it matches."""
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field.name}: empty list item in {text!r}")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"{field.name}: step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if body == "*":
            low, high = field.low, field.high
        elif "-" in body:
            a, _, b = body.partition("-")
            low, high = _value(a, field), _value(b, field)
            if low > high:
                raise ScheduleError(f"{field.name}: range {body!r} runs backwards")
        else:
            low = _value(body, field)
            high = field.high if slash else low  # 'a/n' means a, a+n, … up to the maximum
        values.update(range(low, high + 1, step))
    if field.name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


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
    """A 5-field cron expression evaluated in a time zone."""

    def __init__(self, expression: str, tz: ZoneInfo):
        self.expression = expression
        self.tz = tz
        text = MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise ScheduleError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                                f"got {len(parts)} in {expression!r}")
        self.minutes, self.hours, self.days, self.months, self.weekdays = (
            parse_field(p, f) for p, f in zip(parts, FIELDS))
        self._sorted_minutes = sorted(self.minutes)
        self.day_restricted = parts[2] != "*"
        self.weekday_restricted = parts[4] != "*"
        self.every_hour = parts[1] == "*"
        # Fail now, not at the first tick, for expressions such as "0 0 30 2 *".
        self.next_after(datetime(2000, 1, 1, tzinfo=timezone.utc))

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.tz.key!r})"

    def _day_matches(self, day: datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    def _next_wall(self, start: datetime) -> datetime:
        """The first naive wall time >= start (minute resolution) matching every field."""
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
        # Start at the current wall minute: its second occurrence (in a fold) may still be ahead.
        wall = after.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        while True:
            wall = self._next_wall(wall)
            for instant in self._candidates(wall):
                if instant > after:
                    return instant
            wall += timedelta(minutes=1)

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
        wall = after.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        wall -= timedelta(hours=DST_HORIZON_HOURS)  # a fold's second pass repeats earlier wall times
        end = horizon.astimezone(self.tz).replace(tzinfo=None)
        while True:
            wall = self._next_wall(wall)
            if wall > end:
                return best
            for instant in self._candidates(wall):
                if after < instant < best:
                    best = instant
            wall += timedelta(minutes=1)


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
