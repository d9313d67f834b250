"""A 5-field cron expression (minute hour day-of-month month day-of-week), matched per minute.

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists ``a,b``;
day of week is 0–7 with 0 and 7 both Sunday. As in cron, when both day of month and day of
week are restricted, a day matching either one matches. Names (``mon``, ``jan``) and the
``@daily`` shorthands are not supported.

>>> nightly = CronSchedule.parse("30 22 * * 1-5")
>>> nightly.matches(datetime(2026, 11, 25, 22, 30))  # a Wednesday
True
>>> nightly.matches(datetime(2026, 11, 29, 22, 30))  # a Sunday
False
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from overnight.errors import ConfigError

#: (name, lowest, highest) of each field, in order.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
#: How far :meth:`CronSchedule.next_after` looks ahead (minutes in a leap year).
_SEARCH_MINUTES = 366 * 24 * 60


def _parse_part(part: str, low: int, high: int, name: str, expr: str) -> set[int]:
    """The values of one comma-separated item of a field."""
    base, _, step_text = part.partition("/")
    try:
        step = int(step_text) if step_text else 1
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, stop = int(first), int(last)
        else:
            start = int(base)
            stop = high if step_text else start
    except ValueError as err:
        raise ConfigError(
            f"cron expression {expr!r}: {name} item {part!r} is not a number, range or step"
        ) from err
    if step < 1 or not (low <= start <= stop <= high):
        raise ConfigError(f"cron expression {expr!r}: {name} item {part!r} is outside {low}-{high}")
    return set(range(start, stop + 1, step))


@dataclass(frozen=True)
class CronSchedule:
    """The minutes a cron expression fires at (local time)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Parse ``expr``; :class:`ConfigError` naming the bad field."""
        fields = expr.split()
        if len(fields) != 5:
            raise ConfigError(
                f"cron expression {expr!r} needs 5 fields (minute hour day month weekday)"
            )
        values = []
        for text, (name, low, high) in zip(fields, _FIELDS, strict=True):
            found: set[int] = set()
            for part in text.split(","):
                found |= _parse_part(part, low, high, name, expr)
            values.append(frozenset(found))
        weekdays = frozenset(0 if d == 7 else d for d in values[4])
        return cls(
            values[0],
            values[1],
            values[2],
            values[3],
            weekdays,
            days_restricted=fields[2] != "*",
            weekdays_restricted=fields[4] != "*",
        )

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires in the minute of ``moment``."""
        if (
            moment.minute not in self.minutes
            or moment.hour not in self.hours
            or moment.month not in self.months
        ):
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing minute strictly after ``moment`` within a year, or None."""
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(_SEARCH_MINUTES):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        return None
