"""Business time, the clock SLA targets are counted in: across nights, weekends, public
holidays of a country, dated exceptions, an iCal feed of closures, daylight saving changes
and time zones. Every moment here is written in UTC and the calendar's local hours beside it."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.calendars import Calendar, NeverOpen, parse_ranges
from rules.errors import RulesInvalid
from rules.loader import load_rules


def calendar(tmp_path: Path, spec: str, name: str = "office") -> Calendar:
    path = tmp_path / "rules.yaml"
    body = textwrap.indent(textwrap.dedent(spec), "    ")
    path.write_text(f"calendars:\n  {name}:\n{body}", encoding="utf-8")
    return load_rules(path).calendars[name]


HELSINKI_OFFICE = """\
timezone: Europe/Helsinki
hours: {mon-fri: "08:00-17:00"}
country: FI
exceptions: {2026-12-23: "08:00-12:00", 2026-12-28: closed}
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # Wed 12:00 + 2 h = Wed 14:00 (Helsinki is UTC+2 in winter).
        (utc(2026, 12, 9, 10), 2, utc(2026, 12, 9, 12)),
        # Fri 16:00 + 2 h: one hour on Friday, the other on Monday 08:00-09:00.
        (utc(2026, 12, 11, 14), 2, utc(2026, 12, 14, 7)),
        # A Saturday message: the clock starts Monday 08:00.
        (utc(2026, 12, 12, 10), 1, utc(2026, 12, 14, 7)),
        # Wed 23 Dec closes at 12:00 (an exception); 24-26 are Finnish holidays, Sun 27 is a
        # Sunday and Mon 28 closed by an exception: 3 h from 10:00 on the 23rd end on Tue 29th.
        (utc(2026, 12, 23, 8), 3, utc(2026, 12, 29, 7)),
    ],
)
def test_a_due_time_counts_only_open_hours(
    tmp_path: Path, start: datetime, hours: int, due: datetime
) -> None:
    office = calendar(tmp_path, HELSINKI_OFFICE)
    assert office.add(start, timedelta(hours=hours)) == due
    assert office.between(start, due) == timedelta(hours=hours)


def test_across_the_spring_change_local_hours_stay_local(tmp_path: Path) -> None:
    office = calendar(tmp_path, 'timezone: Europe/Helsinki\nhours: {mon-fri: "08:00-17:00"}\n')
    # Fri 26 Mar 2027 16:00 EET (UTC+2); the clocks go forward on Sunday the 28th; Monday
    # 08:00 is EEST (UTC+3), 05:00 UTC.
    assert office.add(utc(2027, 3, 26, 14), timedelta(hours=2)) == utc(2027, 3, 29, 6)


def test_a_round_the_clock_calendar_counts_real_hours_over_the_night_of_a_change(
    tmp_path: Path,
) -> None:
    always = calendar(tmp_path, 'timezone: Europe/Helsinki\nhours: {mon-sun: "00:00-24:00"}\n')
    # Sat 27 Mar 2027 22:00 local to Sun 08:00 local is ten hours on the clock, nine real.
    start = utc(2027, 3, 27, 20)
    assert always.add(start, timedelta(hours=9)) == utc(2027, 3, 28, 5)
    assert always.between(start, utc(2027, 3, 28, 5)) == timedelta(hours=9)


def test_a_calendar_in_another_zone_and_hours_past_midnight(tmp_path: Path) -> None:
    nights = calendar(
        tmp_path, 'timezone: America/New_York\nhours: {mon-fri: "22:00-06:00"}\n', "nights"
    )
    # Mon 7 Dec 2026 21:00 in New York (UTC-5) is 02:00 UTC on Tuesday: opens at 22:00 local.
    assert nights.next_open(utc(2026, 12, 8, 2)) == utc(2026, 12, 8, 3)
    assert nights.is_open(utc(2026, 12, 8, 10))  # 05:00 local, still Monday's night
    assert not nights.is_open(utc(2026, 12, 8, 12))  # 07:00 local
    # 7 h from Monday 22:00 local: 8 h that night, so 05:00 local on Tuesday.
    assert nights.add(utc(2026, 12, 8, 3), timedelta(hours=7)) == utc(2026, 12, 8, 10)


def test_holidays_from_an_ical_feed_recurring_ones_included(tmp_path: Path) -> None:
    (tmp_path / "closures.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//closures//EN\r\n"
        "BEGIN:VEVENT\r\nUID:inventory@example\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;VALUE=DATE:20261209\r\nDTEND;VALUE=DATE:20261211\r\n"
        "SUMMARY:Inventory\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:founders@example\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART;VALUE=DATE:20260115\r\nDTEND;VALUE=DATE:20260116\r\n"
        "RRULE:FREQ=YEARLY\r\nSUMMARY:Founders' day\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n",
        encoding="utf-8",
    )
    office = calendar(
        tmp_path, 'timezone: Europe/Helsinki\nhours: {mon-fri: "08:00-17:00"}\nical: closures.ics\n'
    )
    # Wed 9 and Thu 10 Dec are closed (DTEND is the day after); Fri 11 is open.
    assert office.add(utc(2026, 12, 8, 14), timedelta(hours=2)) == utc(2026, 12, 11, 7)
    assert office.closed_on(datetime(2027, 1, 15).date())  # the yearly one, next year too


def test_a_calendar_that_never_opens_says_so(tmp_path: Path) -> None:
    shut = calendar(tmp_path, "timezone: UTC\nhours: {mon-sun: closed}\n")
    with pytest.raises(NeverOpen, match="no open hour"):
        shut.add(utc(2026, 12, 9, 10), timedelta(minutes=1))


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("country: XX\n", "no public holidays known for 'XX'"),
        ("country: FI\nsubdivision: QQ\n", "'QQ' is not a subdivision of FI"),
        ("exceptions: {2026-13-01: closed}\n", "expected a date"),
        ("exceptions: {2026-12-24: noon}\n", "is not a time range"),
        ("ical: missing.ics\n", "cannot read"),
    ],
)
def test_a_broken_calendar_is_refused_with_why(tmp_path: Path, spec: str, said: str) -> None:
    with pytest.raises(RulesInvalid) as raised:
        calendar(tmp_path, 'timezone: UTC\nhours: {mon-fri: "08:00-17:00"}\n' + spec)
    assert said in str(raised.value.problems[0])


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 20),
)
def test_business_time_elapsed_until_a_due_time_is_the_target(
    start: datetime, minutes: int
) -> None:
    """Over three years of Finnish holidays, lunch breaks and DST changes."""
    day = parse_ranges("08:00-12:00, 13:00-17:00")
    office = Calendar("office", ZoneInfo("Europe/Helsinki"), (day,) * 5 + ((), ()), country="FI")
    due = office.add(start, timedelta(minutes=minutes))
    assert due >= start
    assert office.between(start, due) == timedelta(minutes=minutes)
    if minutes:
        assert office.is_open(due - timedelta(seconds=1))


def test_an_edited_ical_feed_is_new_rules(tmp_path: Path) -> None:
    from rules.holder import RulesInForce

    feed = tmp_path / "closures.ics"

    def closures(day: str) -> None:
        feed.write_text(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//closures//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:c@example\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART;VALUE=DATE:{day}\r\nSUMMARY:Closed\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            encoding="utf-8",
        )

    closures("20261209")
    (tmp_path / "rules.yaml").write_text(
        'calendars:\n  office:\n    timezone: UTC\n    hours: {mon-fri: "08:00-17:00"}\n'
        "    ical: closures.ics\n",
        encoding="utf-8",
    )
    rules = RulesInForce(tmp_path / "rules.yaml")
    before = rules.current.version
    assert rules.current.ruleset.calendars["office"].closed_on(datetime(2026, 12, 9).date())
    assert not rules.reload_if_changed()
    closures("20261210")
    os.utime(feed, ns=(feed.stat().st_atime_ns, feed.stat().st_mtime_ns + 10_000_000))
    assert rules.reload_if_changed()
    office = rules.current.ruleset.calendars["office"]
    assert rules.current.version != before
    assert office.closed_on(datetime(2026, 12, 10).date())
    assert not office.closed_on(datetime(2026, 12, 9).date())
