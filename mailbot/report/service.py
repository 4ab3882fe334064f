"""The report's entry point: read the cases, compute the figures."""

from __future__ import annotations

from datetime import date, datetime

from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.report.figures import Figures, Period, compute_figures
from mailbot.store import Database

__all__ = ["Figures", "Period", "build_figures", "last_months"]


def last_months(today: date, months: int = 12) -> Period:
    """The ``months`` calendar months that end with the one of ``today`` (to ``today``)."""
    year, month = today.year, today.month - (months - 1)
    while month < 1:
        year, month = year - 1, month + 12
    return Period(date(year, month, 1), today)


def build_figures(db: Database, calendar: BusinessCalendar, policy: PolicySettings,
                  period: Period, now: datetime) -> Figures:
    """Read the period's cases and the cases at risk at ``now``, and add them up."""
    from mailbot.report.query import case_rows, cases_at_risk

    with db.session() as session:
        at_risk, at_risk_total = cases_at_risk(session, calendar, policy, now)
        return compute_figures(
            case_rows(session, calendar, period),
            calendar=calendar,
            period=period,
            now=now,
            ack_business_days=policy.ack_business_days,
            assessment_business_days=policy.assessment_business_days,
            at_risk=at_risk,
            at_risk_total=at_risk_total,
        )
