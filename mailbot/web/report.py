"""The report page's figures: the SLA report's own computation (``mailbot.report``), read over
the case view's read-only session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.report.figures import Figures, compute_figures
from mailbot.report.query import case_rows, cases_at_risk
from mailbot.report.service import last_months


def sla_figures(session: Session, calendar: BusinessCalendar, policy: PolicySettings,
                now: datetime, months: int) -> Figures:
    """The last ``months`` calendar months up to today, as ``mailbot report`` counts them."""
    period = last_months(calendar.local_date(now), months)
    at_risk, at_risk_total = cases_at_risk(session, calendar, policy, now)
    return compute_figures(
        case_rows(session, calendar, period), calendar=calendar, period=period, now=now,
        ack_business_days=policy.ack_business_days,
        assessment_business_days=policy.assessment_business_days,
        at_risk=at_risk, at_risk_total=at_risk_total)
