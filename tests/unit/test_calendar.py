"""Business days, deadlines and business hours in the team's timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.config import WEEKDAYS, PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")  # changes its clocks at local midnight
END_OF_DAY = time(23, 59, 59, 999_999)
EVERY_DAY = WEEKDAYS


def local(
    tz: ZoneInfo, y: int, m: int, d: int, hh: int = 0, mm: int = 0, fold: int = 0
) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz, fold=fold)


def end_of(tz: ZoneInfo, y: int, m: int, d: int) -> datetime:
    return datetime.combine(date(y, m, d), END_OF_DAY, tzinfo=tz).astimezone(UTC)


def amsterdam(
    *,
    workdays: tuple[str, ...] | list[str] = ("mon", "tue", "wed", "thu", "fri"),
    holidays: tuple[date, ...] | list[date] = (),
    holiday_country: str = "",
) -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        workdays=workdays,
        holidays=holidays,
        holiday_country=holiday_country,
    )


# ---------------------------------------------------------------------------------------------
# Deadlines: table


# fmt: off
DEADLINES = [
    pytest.param(
        amsterdam(), local(AMS, 2026, 5, 8, 16), 3, end_of(AMS, 2026, 5, 13),
        id="friday-afternoon-report-is-due-wednesday",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 5, 9, 10), 3, end_of(AMS, 2026, 5, 13),
        id="saturday-report-is-due-wednesday",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 5, 10, 23, 59), 3, end_of(AMS, 2026, 5, 13),
        id="sunday-report-is-due-wednesday",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 5, 11, 9), 1, end_of(AMS, 2026, 5, 12),
        id="one-business-day-is-the-next-day",
    ),
    pytest.param(
        amsterdam(holidays=[date(2026, 5, 12)]), local(AMS, 2026, 5, 8, 16), 3,
        end_of(AMS, 2026, 5, 14), id="configured-holiday-inside-the-window-is-skipped",
    ),
    pytest.param(
        amsterdam(holiday_country="NL"), local(AMS, 2026, 4, 24, 16), 3,
        end_of(AMS, 2026, 4, 30), id="kings-day-from-the-country-calendar-is-skipped",
    ),
    pytest.param(
        amsterdam(holiday_country="NL"), local(AMS, 2026, 4, 24, 16), 1,
        end_of(AMS, 2026, 4, 28), id="kings-day-pushes-a-one-day-deadline-to-tuesday",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 4, 24, 16), 1, end_of(AMS, 2026, 4, 27),
        id="without-a-country-calendar-kings-day-is-a-working-day",
    ),
    pytest.param(
        amsterdam(holiday_country="NL", holidays=[date(2026, 12, 24), date(2026, 12, 31)]),
        local(AMS, 2026, 12, 23, 12), 3, end_of(AMS, 2026, 12, 30),
        id="christmas-week-with-both-kinds-of-holiday",
    ),
    pytest.param(
        amsterdam(holiday_country="NL", holidays=[date(2026, 12, 24), date(2026, 12, 31)]),
        local(AMS, 2026, 12, 30, 12), 2, end_of(AMS, 2027, 1, 5),
        id="window-crossing-new-year-uses-next-years-holidays",
    ),
    pytest.param(
        amsterdam(holiday_country="NL"), local(AMS, 2027, 4, 26, 12), 1,
        end_of(AMS, 2027, 4, 28), id="kings-day-next-year-is-known-too",
    ),
    pytest.param(
        amsterdam(holiday_country="NL"), local(AMS, 2099, 4, 24, 12), 1,
        end_of(AMS, 2099, 4, 28), id="kings-day-far-ahead-is-known-too",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 3, 27, 16), 3, end_of(AMS, 2026, 4, 1),
        id="amsterdam-dst-start-inside-the-window",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 3, 29, 3, 30), 3, end_of(AMS, 2026, 4, 1),
        id="amsterdam-report-on-the-dst-start-day",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 10, 23, 16), 3, end_of(AMS, 2026, 10, 28),
        id="amsterdam-dst-end-inside-the-window",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 10, 25, 2, 30, fold=1), 3, end_of(AMS, 2026, 10, 28),
        id="amsterdam-report-in-the-repeated-hour",
    ),
    pytest.param(
        amsterdam(workdays=["sun", "mon", "tue", "wed", "thu"]), local(AMS, 2026, 3, 28, 12), 1,
        end_of(AMS, 2026, 3, 29), id="deadline-on-the-short-dst-start-sunday",
    ),
    pytest.param(
        amsterdam(workdays=["sun", "mon", "tue", "wed", "thu"]), local(AMS, 2026, 10, 24, 12), 1,
        end_of(AMS, 2026, 10, 25), id="deadline-on-the-long-dst-end-sunday",
    ),
    pytest.param(
        BusinessCalendar(timezone="America/New_York"), local(NYC, 2026, 3, 6, 16), 3,
        end_of(NYC, 2026, 3, 11), id="new-york-dst-start-inside-the-window",
    ),
    pytest.param(
        BusinessCalendar(timezone="America/New_York"), local(NYC, 2026, 10, 30, 16), 3,
        end_of(NYC, 2026, 11, 4), id="new-york-dst-end-inside-the-window",
    ),
    pytest.param(
        amsterdam(), datetime(2026, 1, 12, 23, 30, tzinfo=UTC), 3, end_of(AMS, 2026, 1, 16),
        id="just-after-local-midnight-while-utc-is-still-the-day-before",
    ),
    pytest.param(
        amsterdam(), local(AMS, 2026, 1, 12, 23, 30), 3, end_of(AMS, 2026, 1, 15),
        id="late-at-night-counts-from-the-next-day",
    ),
    pytest.param(
        BusinessCalendar(timezone="America/New_York"), datetime(2026, 1, 13, 3, 0, tzinfo=UTC),
        3, end_of(NYC, 2026, 1, 15),
        id="late-evening-in-new-york-while-utc-is-already-the-next-day",
    ),
    pytest.param(
        BusinessCalendar(timezone="Asia/Jerusalem", workdays=["sun", "mon", "tue", "wed", "thu"]),
        local(ZoneInfo("Asia/Jerusalem"), 2026, 5, 7, 16), 3,
        end_of(ZoneInfo("Asia/Jerusalem"), 2026, 5, 12), id="sunday-to-thursday-week",
    ),
    pytest.param(
        BusinessCalendar(timezone="Asia/Jerusalem", workdays=["sun", "mon", "tue", "wed", "thu"]),
        local(ZoneInfo("Asia/Jerusalem"), 2026, 5, 8, 10), 1,
        end_of(ZoneInfo("Asia/Jerusalem"), 2026, 5, 10), id="friday-report-in-a-sunday-week",
    ),
    pytest.param(
        BusinessCalendar(timezone="America/Santiago", workdays=EVERY_DAY),
        local(SANTIAGO, 2026, 4, 3, 12), 1, datetime(2026, 4, 5, 3, 59, 59, 999_999, tzinfo=UTC),
        id="day-whose-last-hour-repeats-at-midnight-ends-after-the-repeat",
    ),
    pytest.param(
        BusinessCalendar(timezone="America/Santiago", workdays=EVERY_DAY),
        local(SANTIAGO, 2026, 9, 4, 12), 1, datetime(2026, 9, 6, 3, 59, 59, 999_999, tzinfo=UTC),
        id="day-followed-by-a-skipped-midnight-ends-when-the-clocks-jump",
    ),
]
# fmt: on


@pytest.mark.parametrize(("calendar", "received", "n", "due"), DEADLINES)
def test_deadline_is_the_end_of_the_nth_local_business_day(
    calendar: BusinessCalendar, received: datetime, n: int, due: datetime
) -> None:
    got = calendar.add_business_days(received, n)
    assert got == due
    assert got.tzinfo is UTC


def test_deadline_reads_end_of_day_on_the_local_wall_clock_across_dst() -> None:
    calendar = amsterdam()
    before = calendar.add_business_days(local(AMS, 2026, 3, 26, 10), 1)  # Friday, CET
    after = calendar.add_business_days(local(AMS, 2026, 3, 27, 10), 1)  # Monday, CEST
    assert before.astimezone(AMS).time() == after.astimezone(AMS).time() == END_OF_DAY
    assert after - before == timedelta(days=3, hours=-1)  # the lost hour, not a shifted deadline


def test_settings_build_the_same_calendar() -> None:
    policy = PolicySettings(
        timezone="Europe/Amsterdam",
        workdays=("mon", "tue", "wed", "thu", "fri"),
        holidays=(date(2026, 12, 24),),
        holiday_country="NL",
        business_hours=(time(8, 30), time(18, 0)),
    )
    calendar = BusinessCalendar.from_policy(policy)
    assert not calendar.is_business_day(date(2026, 12, 24))  # from the list
    assert not calendar.is_business_day(date(2026, 4, 27))  # from the country
    assert calendar.in_business_hours(local(AMS, 2026, 5, 13, 8, 30))
    assert calendar.add_business_days(local(AMS, 2026, 4, 24, 16), 1) == end_of(AMS, 2026, 4, 28)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 5, 13), True),  # a Wednesday
        (date(2026, 5, 16), False),  # a Saturday
        (date(2026, 4, 27), False),  # King's Day
        (date(2026, 4, 5), False),  # Easter Sunday, a Sunday anyway
        (date(2026, 5, 14), False),  # Ascension Day
        (date(2026, 5, 5), True),  # Liberation Day is not a public holiday in 2026
        (date(2026, 12, 24), False),  # from the config list
        (date(2094, 4, 27), False),  # King's Day, a Tuesday, decades ahead
        (date(2094, 4, 26), True),
    ],
)
def test_is_business_day_knows_weekends_and_both_kinds_of_holiday(
    day: date, expected: bool
) -> None:
    calendar = amsterdam(holiday_country="NL", holidays=[date(2026, 12, 24)])
    assert calendar.is_business_day(day) is expected


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        amsterdam().add_business_days(datetime(2026, 5, 8, 16), 3)


def test_zero_business_days_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        amsterdam().add_business_days(local(AMS, 2026, 5, 8, 16), 0)


def test_unknown_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="workdays"):
        BusinessCalendar(workdays=["monday"])


# ---------------------------------------------------------------------------------------------
# At risk


# fmt: off
AT_RISK = [
    pytest.param(amsterdam(), end_of(AMS, 2026, 5, 13), 1, local(AMS, 2026, 5, 13),
                 id="one-day-is-the-start-of-the-due-day"),
    pytest.param(amsterdam(), end_of(AMS, 2026, 5, 13), 2, local(AMS, 2026, 5, 12),
                 id="two-days-is-the-start-of-the-day-before"),
    pytest.param(amsterdam(), end_of(AMS, 2026, 5, 13), 4, local(AMS, 2026, 5, 8),
                 id="counting-back-skips-the-weekend"),
    pytest.param(amsterdam(), end_of(AMS, 2026, 5, 13), 0, end_of(AMS, 2026, 5, 13),
                 id="zero-days-is-the-deadline-itself"),
    pytest.param(amsterdam(holiday_country="NL"), end_of(AMS, 2026, 4, 30), 4,
                 local(AMS, 2026, 4, 24), id="counting-back-skips-kings-day"),
    pytest.param(amsterdam(), end_of(AMS, 2026, 4, 1), 4, local(AMS, 2026, 3, 27),
                 id="counting-back-across-dst-start-gives-local-midnight"),
    pytest.param(amsterdam(), end_of(AMS, 2026, 5, 16), 1, local(AMS, 2026, 5, 15),
                 id="a-due-day-off-counts-back-from-the-business-day-before"),
    pytest.param(amsterdam(holiday_country="NL"), end_of(AMS, 2027, 1, 4), 2,
                 local(AMS, 2026, 12, 31), id="counting-back-across-new-years-day"),
    pytest.param(BusinessCalendar(timezone="America/Santiago", workdays=EVERY_DAY),
                 end_of(SANTIAGO, 2026, 9, 6), 1, datetime(2026, 9, 6, 4, tzinfo=UTC),
                 id="a-day-without-midnight-starts-when-the-clocks-jump"),
]
# fmt: on


@pytest.mark.parametrize(("calendar", "due", "n", "expected"), AT_RISK)
def test_at_risk_from_the_start_of_the_last_n_business_days(
    calendar: BusinessCalendar, due: datetime, n: int, expected: datetime
) -> None:
    assert calendar.at_risk_from(due, n) == expected


# ---------------------------------------------------------------------------------------------
# Business hours


HOURS = [
    pytest.param(local(AMS, 2026, 5, 13, 9), True, id="opening-time-is-inside"),
    pytest.param(local(AMS, 2026, 5, 13, 8, 59), False, id="a-minute-before-opening"),
    pytest.param(local(AMS, 2026, 5, 13, 16, 59), True, id="a-minute-before-closing"),
    pytest.param(local(AMS, 2026, 5, 13, 17), False, id="closing-time-is-outside"),
    pytest.param(datetime(2026, 5, 13, 7, 30, tzinfo=UTC), True, id="judged-on-the-local-clock"),
    pytest.param(local(AMS, 2026, 5, 16, 11), False, id="saturday"),
    pytest.param(local(AMS, 2026, 4, 27, 11), False, id="kings-day"),
]


@pytest.mark.parametrize(("at", "expected"), HOURS)
def test_in_business_hours(at: datetime, expected: bool) -> None:
    assert amsterdam(holiday_country="NL").in_business_hours(at) is expected


# fmt: off
# fmt: on


# ---------------------------------------------------------------------------------------------
# Properties

ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",  # a half-hour DST shift
    "Asia/Kolkata",
    "Pacific/Chatham",
]
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)
)
workday_sets = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)
holiday_lists = st.lists(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2061, 12, 31)), max_size=20
)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    return BusinessCalendar(
        timezone=draw(st.sampled_from(ZONES)),
        workdays=draw(workday_sets),
        holidays=draw(holiday_lists),
    )


def reference_deadline_date(calendar: BusinessCalendar, received: datetime, n: int) -> date:
    """The rule of the design, spelt out one day at a time."""
    closed = set(calendar.holidays)
    day = received.astimezone(calendar.tz).date()
    while n:
        day += timedelta(days=1)
        if WEEKDAYS[day.weekday()] in calendar.workdays and day not in closed:
            n -= 1
    return day


@settings(max_examples=300, deadline=None)
@given(calendars(), instants, st.integers(min_value=1, max_value=30))
def test_deadline_always_ends_a_business_day_at_local_end_of_day(
    calendar: BusinessCalendar, received: datetime, n: int
) -> None:
    due = calendar.add_business_days(received, n)
    wall = due.astimezone(calendar.tz)
    assert wall.time() == END_OF_DAY
    assert calendar.is_business_day(wall.date())
    assert wall.date() == reference_deadline_date(calendar, received, n)
    assert (due + timedelta(microseconds=1)).astimezone(calendar.tz).date() > wall.date()


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, st.integers(1, 20), st.integers(1, 20))
def test_more_days_never_move_the_deadline_earlier(
    calendar: BusinessCalendar, received: datetime, n: int, extra: int
) -> None:
    assert calendar.add_business_days(received, n + extra) > calendar.add_business_days(received, n)


# Around the transitions, any start time: the wall clock of the deadline never moves an hour.
DST_WEEKS = [
    ("Europe/Amsterdam", date(2026, 3, 29)),
    ("Europe/Amsterdam", date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("America/Santiago", date(2026, 4, 5)),
    ("America/Santiago", date(2026, 9, 6)),
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(DST_WEEKS),
    st.integers(min_value=-8 * 24 * 60, max_value=2 * 24 * 60),
    st.integers(1, 6),
    workday_sets,
)
def test_deadline_wall_clock_is_the_same_across_dst_transitions(
    zone_and_day: tuple[str, date], minutes: int, n: int, workdays: list[str]
) -> None:
    zone, transition_day = zone_and_day
    calendar = BusinessCalendar(timezone=zone, workdays=workdays)
    received = datetime.combine(transition_day, time(12), tzinfo=UTC) + timedelta(minutes=minutes)
    due = calendar.add_business_days(received, n)
    wall = due.astimezone(calendar.tz)
    assert wall.time() == END_OF_DAY
    assert wall.date() == reference_deadline_date(calendar, received, n)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, st.integers(1, 15), st.integers(0, 15))
def test_at_risk_start_is_not_after_the_deadline_and_starts_a_business_day(
    calendar: BusinessCalendar, received: datetime, n: int, at_risk_days: int
) -> None:
    due = calendar.add_business_days(received, n)
    start = calendar.at_risk_from(due, at_risk_days)
    assert start <= due
    if at_risk_days == 0:
        assert start == due
        return
    wall = start.astimezone(calendar.tz)
    assert calendar.is_business_day(wall.date())
    assert calendar.start_of_day(wall.date()) == start
    assert (start - timedelta(microseconds=1)).astimezone(calendar.tz).date() < wall.date()
    if at_risk_days == 1:
        assert wall.date() == due.astimezone(calendar.tz).date()
