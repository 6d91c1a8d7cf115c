"""Business hours: named calendars with a time zone, weekly hours, holidays and dated exceptions,
and the arithmetic of business time that SLA targets are counted in.

Times are read in the calendar's own zone, so "08:00-17:00" in Europe/Helsinki stays right
across daylight saving changes, and durations are real elapsed time between those local hours
(the night of a change is an hour shorter or longer; an open hour is always an hour). A range
that ends before it starts ("22:00-06:00") runs past midnight into the next day. A day is
closed when it is listed in `holidays`, is a public holiday of `country` (and `subdivision`)
as the `holidays` package knows it, or has an exception saying so; an exception may also give a
day other hours (a short Christmas Eve).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: How far business time is looked for: a calendar with no open hour in that long is refused.
HORIZON_DAYS = 3 * 366

Ranges = tuple[tuple[time, time], ...]


class NeverOpen(ValueError):
    """The calendar has no open hour within HORIZON_DAYS from the moment asked about."""


@dataclass(frozen=True)
class Calendar:
    name: str
    zone: ZoneInfo
    #: Per weekday (0 = Monday): the open ranges, as (start, end) times of that day.
    hours: tuple[Ranges, ...]
    holidays: frozenset[date] = field(default_factory=frozenset)
    #: Public holidays of this ISO country (and subdivision), from the holidays package.
    country: str = ""
    subdivision: str = ""
    #: Dated hours instead of the week's: () closes the day.
    exceptions: Mapping[date, Ranges] = field(default_factory=dict, hash=False)
    #: Each day's open periods in UTC, once worked out: the rules ask "open now?" for every
    #: message and candidate agent, and the zone arithmetic was most of a rules pass's time
    #: (measured: 1.2 s of 6.3 s for 10,000 messages). A calendar is made anew when the rules
    #: file is reloaded, so this never outlives its hours.
    _days: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    # -- what a day is -------------------------------------------------------------------------

    def closed_on(self, day: date) -> bool:
        """A holiday (listed, or public in the calendar's country) without an exception."""
        if day in self.exceptions:
            return not self.exceptions[day]
        if day in self.holidays:
            return True
        return bool(self.country) and day in public_holidays(
            self.country, self.subdivision, day.year
        )

    def ranges_on(self, day: date) -> Ranges:
        if day in self.exceptions:
            return self.exceptions[day]
        if self.closed_on(day):
            return ()
        return self.hours[day.weekday()]

    # -- moments -------------------------------------------------------------------------------

    def is_open(self, moment: datetime) -> bool:
        for start, end in self.periods(moment - timedelta(days=2)):
            if start > moment:
                return False
            if moment < end:
                return True
        return False

    def describe(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{WEEKDAYS[local.weekday()]} {local:%H:%M} {self.zone.key}"

    def next_open(self, moment: datetime) -> datetime:
        """`moment` if open then, else when it opens next."""
        for start, end in self.periods(moment):
            if end > moment:
                return max(start, moment)
        raise NeverOpen(f"calendar {self.name} has no open hour within {HORIZON_DAYS} days")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of open time after `start` (a due time in business hours)."""
        remaining = duration
        for begin, end in self.periods(start):
            if end <= start:
                continue
            begin = max(begin, start)
            if end - begin >= remaining:
                return begin + remaining
            remaining -= end - begin
        raise NeverOpen(f"calendar {self.name} has no open hour within {HORIZON_DAYS} days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from `start` to `end` (how long a customer waited, in business time)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, finish in self.periods(start):
            if begin >= end:
                break
            overlap = min(finish, end) - max(begin, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def periods(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open periods in UTC, in order, from the day before `since` (a range past
        midnight may have begun then), merged where they touch; up to HORIZON_DAYS."""
        day = since.astimezone(self.zone).date() - timedelta(days=1)
        pending: tuple[datetime, datetime] | None = None
        for _ in range(HORIZON_DAYS):
            for start, end in self._day_periods(day):
                if pending is not None and start <= pending[1]:
                    pending = (pending[0], max(pending[1], end))
                    continue
                if pending is not None:
                    yield pending
                pending = (start, end)
            day += timedelta(days=1)
        if pending is not None:
            yield pending

    def _day_periods(self, day: date) -> list[tuple[datetime, datetime]]:
        known = self._days.get(day)
        if known is None:
            if len(self._days) > 4096:  # a long SLA horizon walked once: keep memory bounded
                self._days.clear()
            known = self._days[day] = self._work_out_day(day)
        return known

    def _work_out_day(self, day: date) -> list[tuple[datetime, datetime]]:
        found = []
        for start, end in self.ranges_on(day):
            begin = _at(day, start, self.zone)
            if end <= start:  # past midnight
                finish = _at(day + timedelta(days=1), end, self.zone)
            elif end == time(23, 59, 59, 999999):
                finish = _at(day + timedelta(days=1), time(0, 0), self.zone)
            else:
                finish = _at(day, end, self.zone)
            if finish > begin:
                found.append((begin, finish))
        return sorted(found)


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time of a day, in UTC. A time the spring change skips (03:30 in Helsinki on
    the last Sunday of March) is read with the offset before the change, as Python does."""
    return datetime.combine(day, moment, zone).astimezone(UTC)


@functools.lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    import holidays

    found = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    return frozenset(found.keys())


def check_country(country: str, subdivision: str) -> str:
    """'' when the holidays package knows the country (and subdivision), else why not."""
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        from rules.errors import did_you_mean

        return f"no public holidays known for '{country}'{did_you_mean(country, supported)}"
    if subdivision and subdivision not in supported[country]:
        known = ", ".join(supported[country][:30])
        return f"'{subdivision}' is not a subdivision of {country} (known: {known})"
    return ""


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
