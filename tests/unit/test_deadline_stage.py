"""Which deadline a case runs and where it stands: pure functions of its fields, the calendar and
the time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import (
    ACK,
    ASSESSMENT,
    AT_RISK,
    OVERDUE,
    RESOLUTION,
    Deadline,
    at_risk_horizon,
    reminder_may_go,
    running_deadline,
    stage_at,
)
from mailbot.outgoing import describe_interval, time_left

AMS = ZoneInfo("Europe/Amsterdam")
CAL = BusinessCalendar(timezone="Europe/Amsterdam", holidays=[date(2026, 12, 25)])
# Received Friday 6 November 2026, 16:00 -> Mon, Tue, Wed -> due Wednesday 11 November.
DUE_WED = CAL.add_business_days(datetime(2026, 11, 6, 16, 0, tzinfo=AMS), 3)
ACK_DUE = datetime(2026, 11, 11, 22, 59, 59, 999999, tzinfo=UTC)
ASSESSMENT_DUE = datetime(2026, 11, 20, 22, 59, 59, 999999, tzinfo=UTC)
RESOLUTION_DUE = datetime(2026, 12, 15, 22, 59, 59, 999999, tzinfo=UTC)


def ams(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=AMS)


def dues(**overrides: datetime | None) -> dict[str, datetime | None]:
    values: dict[str, datetime | None] = {
        "ack_due": ACK_DUE,
        "assessment_due": ASSESSMENT_DUE,
        "resolution_due": RESOLUTION_DUE,
    }
    values.update(overrides)
    return values


def test_the_example_report_is_due_wednesday_end_of_day() -> None:
    assert DUE_WED == ACK_DUE


# fmt: off
RUNNING = [
    pytest.param("new", Deadline(ACK, ACK_DUE), id="new-runs-the-acknowledgement-clock"),
    pytest.param("acknowledged", Deadline(ASSESSMENT, ASSESSMENT_DUE),
                 id="acknowledged-runs-the-assessment-clock"),
    pytest.param("assessed", Deadline(RESOLUTION, RESOLUTION_DUE),
                 id="assessed-runs-the-resolution-clock"),
    pytest.param("resolved", None, id="resolved-runs-none"),
    pytest.param("closed", None, id="closed-runs-none"),
]
# fmt: on


@pytest.mark.parametrize(("status", "expected"), RUNNING)
def test_each_status_runs_one_deadline(status: str, expected: Deadline | None) -> None:
    assert running_deadline(status, **dues()) == expected


def test_a_case_without_its_due_value_runs_no_deadline() -> None:
    # Automatic mail is promised nothing; an assessment without a target date has no resolution.
    assert running_deadline("new", **dues(ack_due=None)) is None
    assert running_deadline("assessed", **dues(resolution_due=None)) is None


def test_an_earlier_deadline_left_over_does_not_run_after_the_transition() -> None:
    # Acknowledged late: the missed ack deadline stays in the record but no longer runs.
    deadline = running_deadline("acknowledged", **dues())
    assert deadline is not None and deadline.name == ASSESSMENT


# fmt: off
STAGES = [
    pytest.param(ams(11, 6, 16), None, id="just-received-nothing"),
    pytest.param(ams(11, 10, 23, 59), None, id="the-evening-before-the-due-day-nothing"),
    pytest.param(ams(11, 11, 0, 0), AT_RISK, id="at-risk-from-local-midnight-of-the-due-day"),
    pytest.param(ams(11, 11, 3, 0), AT_RISK, id="at-risk-at-night-too"),
    pytest.param(ACK_DUE, AT_RISK, id="at-risk-up-to-and-including-the-due-instant"),
    pytest.param(ACK_DUE + timedelta(microseconds=1), OVERDUE, id="overdue-right-after"),
    pytest.param(ams(12, 1), OVERDUE, id="overdue-weeks-later"),
]
# fmt: on


@pytest.mark.parametrize(("now", "expected"), STAGES)
def test_stage_of_a_deadline_over_time(now: datetime, expected: str | None) -> None:
    assert stage_at(ACK_DUE, now, CAL, 1) == expected


def test_two_at_risk_business_days_reach_back_over_the_weekend() -> None:
    due_monday = CAL.end_of_day(date(2026, 11, 16))
    assert stage_at(due_monday, ams(11, 12, 23, 59), CAL, 2) is None  # Thursday
    assert stage_at(due_monday, ams(11, 13, 0, 0), CAL, 2) == AT_RISK  # Friday
    assert stage_at(due_monday, ams(11, 14), CAL, 2) == AT_RISK  # Saturday


def test_a_holiday_does_not_count_as_an_at_risk_day() -> None:
    due_monday = CAL.end_of_day(date(2026, 12, 28))
    # The last two business days up to Monday 28 December: Thursday 24 and Monday 28
    # (Friday 25 is a holiday).
    assert stage_at(due_monday, ams(12, 23, 23, 59), CAL, 2) is None
    assert stage_at(due_monday, ams(12, 24, 0, 0), CAL, 2) == AT_RISK


def test_with_no_at_risk_days_there_is_only_overdue() -> None:
    assert stage_at(ACK_DUE, ams(11, 11, 12), CAL, 0) is None
    assert stage_at(ACK_DUE, ACK_DUE + timedelta(seconds=1), CAL, 0) == OVERDUE


def test_at_risk_reminders_wait_for_business_hours() -> None:
    assert not reminder_may_go(AT_RISK, ams(11, 11, 8, 59), CAL)
    assert reminder_may_go(AT_RISK, ams(11, 11, 9, 0), CAL)
    assert not reminder_may_go(AT_RISK, ams(11, 11, 17, 0), CAL)
    assert not reminder_may_go(AT_RISK, ams(11, 14, 12, 0), CAL)  # Saturday


def test_escalations_go_at_once_day_or_night() -> None:
    assert reminder_may_go(OVERDUE, ams(11, 12, 3, 0), CAL)
    assert reminder_may_go(OVERDUE, ams(11, 14, 23, 0), CAL)  # Saturday night


# The watch and `cases list --at-risk` select candidates in SQL with two comparisons on the due
# column (due >= now and due < horizon); the pure rule must agree with that window exactly.
_instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(due=_instants, now=_instants, n=st.integers(min_value=0, max_value=5))
def test_the_sql_window_matches_the_stage_rule(due: datetime, now: datetime, n: int) -> None:
    calendar = BusinessCalendar(
        timezone="Europe/Amsterdam", holidays=[date(2026, 12, 25)], holiday_country="NL"
    )
    horizon = at_risk_horizon(calendar, now, n)
    stage = stage_at(due, now, calendar, n)
    assert (due < now) == (stage == OVERDUE)
    assert (now <= due < horizon) == (stage == AT_RISK)


@settings(max_examples=200, deadline=None)
@given(now=_instants, n=st.integers(min_value=1, max_value=5))
def test_the_horizon_is_at_most_n_business_days_and_a_few_calendar_days_ahead(
    now: datetime, n: int
) -> None:
    horizon = at_risk_horizon(CAL, now, n)
    assert now < horizon <= now + timedelta(days=n + 7)


# fmt: off
INTERVALS = [
    pytest.param(timedelta(seconds=30), "less than a minute", id="seconds"),
    pytest.param(timedelta(minutes=40), "40 minutes", id="minutes"),
    pytest.param(timedelta(hours=1, minutes=1), "1 hour 1 minute", id="singular"),
    pytest.param(timedelta(hours=14, minutes=59, seconds=59), "14 hours 59 minutes",
                 id="rounds-down"),
    pytest.param(timedelta(days=2, hours=3, minutes=5), "2 days 3 hours", id="days-drop-minutes"),
    pytest.param(timedelta(days=1), "1 day", id="exactly-a-day"),
]
# fmt: on


@pytest.mark.parametrize(("delta", "expected"), INTERVALS)
def test_intervals_read_as_people_say_them(delta: timedelta, expected: str) -> None:
    assert describe_interval(delta) == expected


def test_time_left_before_and_overdue_after() -> None:
    assert time_left(ACK_DUE, ACK_DUE - timedelta(hours=3)) == "3 hours left"
    assert time_left(ACK_DUE, ACK_DUE + timedelta(hours=2, minutes=1)) == (
        "overdue by 2 hours 1 minute"
    )
