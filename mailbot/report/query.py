"""Reading what the figures need from the database: case rows as a stream, the cases at risk.

Rows are read as plain columns in batches (``yield_per``), never as ORM objects, so 100,000 cases
cost a few megabytes whatever the period. Subjects are read only for the few cases listed at
risk, through the model (where any column encoding or encryption is handled), never as raw SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import at_risk_filter, deadline_of, overdue_filter, stage_at
from mailbot.report.figures import AtRisk, CaseRow, Period

AT_RISK_LISTED = 200
_BATCH = 5000

_COLUMNS = (
    Case.id, Case.status, Case.flags, Case.close_reason, Case.severity, Case.received_at,
    Case.ack_due, Case.acknowledged_at, Case.assessment_due, Case.assessed_at, Case.resolved_at,
    Case.closed_at,
)


def case_rows(session: Session, calendar: BusinessCalendar, period: Period) -> Iterator[CaseRow]:
    """The cases received in ``period`` (local dates), oldest first."""
    start = calendar.start_of_day(period.since)
    end = calendar.start_of_day(period.until + timedelta(days=1))
    stmt = (select(*_COLUMNS)
            .where(Case.received_at >= start, Case.received_at < end)
            .order_by(Case.received_at, Case.id)
            .execution_options(yield_per=_BATCH))
    for r in session.execute(stmt):
        yield CaseRow(r[0], r[1], tuple(r[2] or ()), r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                      r[10], r[11])


def cases_at_risk(
    session: Session, calendar: BusinessCalendar, policy: PolicySettings, now: datetime,
    *, limit: int = AT_RISK_LISTED,
) -> tuple[list[AtRisk], int]:
    """Open cases whose running deadline is at risk or overdue at ``now``, soonest first (at most
    ``limit``), and how many there are. The same rule as the deadline watch."""
    where = or_(at_risk_filter(calendar, policy, now), overdue_filter(now))
    total = session.scalar(select(func.count()).select_from(Case).where(where)) or 0
    listed: list[AtRisk] = []
    for case in session.scalars(select(Case).where(where).order_by(Case.received_at, Case.id)
                                .limit(limit)):
        deadline = deadline_of(case)
        if deadline is None:
            continue
        stage = stage_at(deadline.due, now, calendar, policy.at_risk_business_days)
        if stage is None:
            continue
        listed.append(AtRisk(case.id, deadline.name, deadline.due, stage, case.subject or ""))
    listed.sort(key=lambda a: (a.due, a.case))
    return listed, total
