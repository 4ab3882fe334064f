"""Who gets reminders at a given moment: a rotation, else the fixed addresses, else nobody."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mailbot.config import OncallSettings
from mailbot.deadlines.oncall import oncall_at

AMS = ZoneInfo("Europe/Amsterdam")
WEEKLY = OncallSettings(
    addresses=("oncall@example.com",),
    rotation=("alice@example.com", "bob@example.com", "carol@example.com"),
    rotation_start=date(2026, 11, 2),  # a Monday
    rotation_days=7,
)


def ams(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=AMS)


# fmt: off
ROTATION = [
    pytest.param(ams(2026, 11, 2, 0), "alice@example.com", id="first-shift-begins-at-the-start"),
    pytest.param(ams(2026, 11, 8, 23, 59), "alice@example.com", id="first-shift-lasts-seven-days"),
    pytest.param(ams(2026, 11, 9, 0, 0), "bob@example.com", id="second-shift-at-local-midnight"),
    pytest.param(ams(2026, 11, 16), "carol@example.com", id="third-shift"),
    pytest.param(ams(2026, 11, 23), "alice@example.com", id="the-rotation-cycles"),
    pytest.param(ams(2027, 11, 1), "bob@example.com", id="a-year-on"),
    pytest.param(ams(2026, 10, 1), "alice@example.com", id="before-the-start-the-first-covers"),
    pytest.param(ams(2026, 11, 1, 23, 59), "alice@example.com", id="the-evening-before-the-start"),
    pytest.param(datetime(2026, 11, 8, 23, 30, tzinfo=UTC), "bob@example.com",
                 id="shift-change-follows-the-local-date-not-utc"),
]
# fmt: on


@pytest.mark.parametrize(("at", "expected"), ROTATION)
def test_rotation_gives_whoever_is_on_call_that_local_day(at: datetime, expected: str) -> None:
    assert oncall_at(WEEKLY, at, AMS) == [expected]


def test_daily_rotation_changes_every_day() -> None:
    daily = OncallSettings(
        rotation=("alice@example.com", "bob@example.com"),
        rotation_start=date(2026, 11, 2),
        rotation_days=1,
    )
    got = [oncall_at(daily, ams(2026, 11, day), AMS) for day in (2, 3, 4, 5)]
    assert got == [["alice@example.com"], ["bob@example.com"]] * 2


def test_rotation_without_a_start_date_falls_to_the_first() -> None:
    settings = OncallSettings(rotation=("alice@example.com", "bob@example.com"))
    assert oncall_at(settings, ams(2030, 6, 1), AMS) == ["alice@example.com"]


def test_without_a_rotation_the_fixed_addresses_are_on_call() -> None:
    settings = OncallSettings(addresses=("oncall@example.com", "cto@example.com"))
    assert oncall_at(settings, ams(2026, 11, 2), AMS) == ["oncall@example.com", "cto@example.com"]


def test_nobody_configured_means_nobody_on_call() -> None:
    assert oncall_at(OncallSettings(), ams(2026, 11, 2), AMS) == []


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        oncall_at(WEEKLY, datetime(2026, 11, 2, 12), AMS)
