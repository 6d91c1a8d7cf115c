"""Business hours: named calendars with a time zone, weekly hours and holidays.

Times are checked in the calendar's own zone, so "08:00-17:00" in Europe/Helsinki stays right
across daylight saving changes. A range that ends before it starts ("22:00-06:00") runs past
midnight into the next day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Calendar:
    name: str
    zone: ZoneInfo
    #: Per weekday (0 = Monday): the open ranges, as (start, end) times of that day.
    hours: tuple[tuple[tuple[time, time], ...], ...]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        now = local.time()
        if self._open_on(local.date(), local.weekday(), now, late=False):
            return True
        # A range past midnight ("22:00-06:00") opened yesterday.
        yesterday = local.date().toordinal() - 1
        return self._open_on(date.fromordinal(yesterday), (local.weekday() - 1) % 7, now, late=True)

    def _open_on(self, day: date, weekday: int, now: time, *, late: bool) -> bool:
        if day in self.holidays:
            return False
        for start, end in self.hours[weekday]:
            overnight = end <= start
            if late:
                if overnight and now < end:
                    return True
            elif (start <= now < end) if not overnight else now >= start:
                return True
        return False

    def describe(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{WEEKDAYS[local.weekday()]} {local:%H:%M} {self.zone.key}"


def parse_zone(name: str) -> ZoneInfo:
    """The zone, or ValueError naming the closest real one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from rules.errors import did_you_mean

        raise ValueError(
            f"unknown time zone '{name}'{did_you_mean(name, available_timezones())}"
        ) from None


def parse_days(spec: str) -> list[int]:
    """`mon-fri`, `sat`, `mon,wed,fri`, `sat-sun` into weekday numbers; ValueError if wrong."""
    days: list[int] = []
    for part in str(spec).lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"'{spec}' is not a day or day range like mon-fri, sat or mon,wed")
        start = WEEKDAYS.index(first)
        stop = WEEKDAYS.index(last) if last else start
        index = start
        while True:
            days.append(index)
            if index == stop:
                break
            index = (index + 1) % 7
    return days


def parse_ranges(spec: str) -> tuple[tuple[time, time], ...]:
    """`08:00-17:00` or `08:00-12:00, 13:00-17:00`; `closed` for none."""
    if str(spec).strip().lower() in ("closed", "off", ""):
        return ()
    ranges = []
    for part in str(spec).split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"'{spec}' is not a time range like 08:00-17:00")
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"'{part.strip()}' is not a valid time range")
        end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
        ranges.append((time(h1, m1), end))
    return tuple(ranges)
