"""Business-day arithmetic in the team's timezone (pure).

The rule (docs/design.md, "Deadlines"): "N business days after" an event counts N business days
forward from the day after the event's *local* date, and the deadline is the end of that day.
Received Friday 16:00 -> Mon, Tue, Wed -> due Wednesday; received Saturday -> due Wednesday too.

Everything is reckoned in local calendar dates first; only the final instant is turned into an
aware datetime, by asking ``zoneinfo`` for a local wall time. Hours are never added, so a DST change
inside the window cannot move a deadline by an hour.

The end of a local day is defined as *the first instant of the next local day minus one
microsecond*. On the wall clock that reads 23:59:59.999999 of the due day, and the definition stays
right on the rare days where midnight itself is skipped or repeated (zones that change their clocks
at 00:00, such as America/Santiago).

Which days are business days: the configured weekdays, minus the configured holiday dates, minus an
optional country calendar from the ``holidays`` package. Both are looked at one year at a time,
built the first time a year is needed and cached, so a deadline in 2090 works like one next week.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import holidays as holidays_lib
from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, rrule, rruleset

from mailbot.config import PolicySettings

__all__ = ["BusinessCalendar"]

_RRULE_WEEKDAYS = {"mon": MO, "tue": TU, "wed": WE, "thu": TH, "fri": FR, "sat": SA, "sun": SU}
_ONE_MICROSECOND = timedelta(microseconds=1)
# A calendar whose every workday is a holiday for this many years in a row is a broken config;
# give up instead of searching forever.
_MAX_EMPTY_YEARS = 50


class BusinessCalendar:
    """The team's working days and hours. Aware datetimes in, aware UTC datetimes out."""

    def __init__(
        self,
        *,
        timezone: str | tzinfo = "UTC",
        workdays: Iterable[str] = ("mon", "tue", "wed", "thu", "fri"),
        holidays: Iterable[date] = (),
        holiday_country: str = "",
        business_hours: tuple[time, time] = (time(9, 0), time(17, 0)),
    ) -> None:
        self.tz: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.workdays = tuple(w.lower() for w in workdays)
        unknown = [w for w in self.workdays if w not in _RRULE_WEEKDAYS]
        if unknown or not self.workdays:
            raise ValueError(f"workdays must be day names from {list(_RRULE_WEEKDAYS)}: {unknown}")
        self.holidays = frozenset(holidays)
        self.holiday_country = holiday_country.upper()
        opens, closes = business_hours
        if not opens < closes:
            raise ValueError(f"business hours must start before they end: {business_hours}")
        self.business_hours = (opens, closes)
        # year -> that year's business days in order; filled lazily (see _business_days_of).
        self._years: dict[int, tuple[date, ...]] = {}
        self._year_sets: dict[int, frozenset[date]] = {}

    @classmethod
    def from_policy(cls, policy: PolicySettings) -> BusinessCalendar:
        return cls(
            timezone=policy.timezone,
            workdays=policy.workdays,
            holidays=policy.holidays,
            holiday_country=policy.holiday_country,
            business_hours=policy.business_hours,
        )

    # -----------------------------------------------------------------------------------------
    # Days

    def is_business_day(self, d: date) -> bool:
        self._business_days_of(d.year)
        return d in self._year_sets[d.year]

    def local_date(self, at: datetime) -> date:
        """The date on the team's wall calendar at the instant ``at``."""
        return _aware(at).astimezone(self.tz).date()

    def start_of_day(self, d: date) -> datetime:
        """The first instant of local day ``d``, in UTC."""
        # fold=0 maps a midnight that falls in a DST gap to the moment the clocks jump, and a
        # repeated midnight to its first occurrence: the first instant of the day either way.
        return datetime.combine(d, time(0), tzinfo=self.tz).astimezone(UTC)

    def end_of_day(self, d: date) -> datetime:
        """The last microsecond of local day ``d``, in UTC (reads 23:59:59.999999 locally)."""
        return self.start_of_day(d + timedelta(days=1)) - _ONE_MICROSECOND

    def business_days_after(self, d: date, n: int) -> date:
        """The n-th business day after ``d``, not counting ``d`` itself (n >= 1)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        for i, day in enumerate(self._business_days_from(d + timedelta(days=1)), start=1):
            if i == n:
                return day
        raise AssertionError("unreachable: _business_days_from never ends")

    def last_business_days(self, d: date, n: int) -> date:
        """The first of the last n business days up to and including ``d`` (n >= 1)."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        for i, day in enumerate(self._business_days_back_from(d), start=1):
            if i == n:
                return day
        raise AssertionError("unreachable: _business_days_back_from never ends")

    # -----------------------------------------------------------------------------------------
    # Deadlines

    def add_business_days(self, start: datetime, n: int) -> datetime:
        """The deadline ``n`` business days after the event at ``start``.

        Counting begins the day after the event's local date; the deadline is the end of the n-th
        business day (see the module docstring), returned in UTC.
        """
        return self.end_of_day(self.business_days_after(self.local_date(start), n))

    def at_risk_from(self, due: datetime, n: int) -> datetime:
        """When a case due at ``due`` becomes at risk, in UTC.

        That is the start (00:00 local) of the last ``n`` business days up to and including the
        due day: n=1 is the start of the due day itself; n=0 is the deadline itself.
        """
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        if n == 0:
            return _aware(due).astimezone(UTC)
        return self.start_of_day(self.last_business_days(self.local_date(due), n))

    # -----------------------------------------------------------------------------------------
    # Hours

    def in_business_hours(self, at: datetime) -> bool:
        """Is ``at`` on a business day, between the opening and closing time on the wall clock?"""
        local = _aware(at).astimezone(self.tz)
        opens, closes = self.business_hours
        return self.is_business_day(local.date()) and opens <= local.time() < closes

    # -----------------------------------------------------------------------------------------
    # The cached year tables

    def _business_days_from(self, d: date) -> Iterator[date]:
        """Business days on or after ``d``, in order, without end."""
        year, empty_years = d.year, 0
        days = self._business_days_of(year)
        i = bisect.bisect_left(days, d)
        while True:
            yield from days[i:]
            empty_years = empty_years + 1 if not days else 0
            _check_not_all_closed(empty_years)
            year += 1
            days, i = self._business_days_of(year), 0

    def _business_days_back_from(self, d: date) -> Iterator[date]:
        """Business days on or before ``d``, newest first, without end."""
        year, empty_years = d.year, 0
        days = self._business_days_of(year)
        i = bisect.bisect_right(days, d)
        while True:
            yield from reversed(days[:i])
            empty_years = empty_years + 1 if not days else 0
            _check_not_all_closed(empty_years)
            year -= 1
            days = self._business_days_of(year)
            i = len(days)

    def _business_days_of(self, year: int) -> tuple[date, ...]:
        cached = self._years.get(year)
        if cached is None:
            cached = self._build_year(year)
            # Two threads may build the same year at once; both get the same answer.
            self._years[year] = cached
            self._year_sets[year] = frozenset(cached)
        return cached

    def _build_year(self, year: int) -> tuple[date, ...]:
        workdays = rrule(
            DAILY,
            byweekday=[_RRULE_WEEKDAYS[w] for w in self.workdays],
            dtstart=datetime(year, 1, 1),
            until=datetime(year, 12, 31),
        )
        days = rruleset()
        days.rrule(workdays)
        for closed in self._closed_days_of(year):
            # exdate takes a naive datetime equal to an occurrence: a date would raise TypeError
            # (datetime compared with date) only later, when the set is iterated.
            days.exdate(datetime.combine(closed, time()))
        return tuple(occurrence.date() for occurrence in days)

    def _closed_days_of(self, year: int) -> set[date]:
        closed = {d for d in self.holidays if d.year == year}
        if self.holiday_country:
            # expand=False: with the default, a lookup of a date in another year quietly adds
            # that year to the object (so the set of its dates changes behind our back).
            # The neighbouring years are built too, so that a day observed in this year for a
            # holiday of the next or the previous one is not missed.
            country = holidays_lib.country_holidays(
                self.holiday_country, years=range(year - 1, year + 2), expand=False
            )
            closed.update(d for d in country if d.year == year)
        return closed


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got the naive {at.isoformat()}")
    return at


def _check_not_all_closed(empty_years: int) -> None:
    if empty_years >= _MAX_EMPTY_YEARS:
        raise ValueError(f"the calendar has no business day in {_MAX_EMPTY_YEARS} years")
