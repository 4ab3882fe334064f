"""The clocks of the rest of the disclosure promise, as pure functions of the calendar.

- **Keeping the reporter informed**: once a case is assessed, on-call is reminded when the team
  has mailed the reporter nothing for ``policy.update_interval_business_days`` business days.
  ``update_clock`` gives the instant that clock rings after a given moment (the assessment, the
  team's last mail to the reporter, the last reminder), or None when the policy turns it off.
- **The disclosure (embargo) date**: on-call is reminded from the start of the
  ``policy.disclosure_warning_business_days``-th business day before it (``disclosure_warn_from``)
  and alerted when the date arrives (``disclosure_arrives``) while the case is still open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar

UpdateClock = Callable[[datetime], datetime | None]


def update_clock(calendar: BusinessCalendar, policy: PolicySettings) -> UpdateClock | None:
    """``at -> when the update reminder is due``; None when the interval is 0 (off)."""
    interval = policy.update_interval_business_days
    if interval <= 0:
        return None

    def due_after(at: datetime) -> datetime | None:
        return calendar.add_business_days(at, interval)

    return due_after


def disclosure_arrives(calendar: BusinessCalendar, day: date) -> datetime:
    """The disclosure date arrives at the start of that local day."""
    return calendar.start_of_day(day)


def disclosure_warn_from(calendar: BusinessCalendar, day: date, business_days: int) -> datetime:
    """The start of the ``business_days``-th business day before ``day`` (0: ``day`` itself)."""
    if business_days <= 0:
        return calendar.start_of_day(day)
    first = calendar.last_business_days(day - timedelta(days=1), business_days)
    return calendar.start_of_day(first)
