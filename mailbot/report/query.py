"""Reading what the figures need from the database: case rows as a stream, the cases at risk.

Rows are read as plain columns in batches (``yield_per``), never as ORM objects, so 100,000 cases
cost a few megabytes whatever the period. Subjects are read only for the few cases listed at
risk, through the model (where any column encoding or encryption is handled), never as raw SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Text, cast, func, or_, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import at_risk_filter, deadline_of, overdue_filter, stage_at
from mailbot.report.figures import AtRisk, CaseRow, Period

AT_RISK_LISTED = 200
_BATCH = 5000

def _epoch(column: Any, dialect: str) -> ColumnElement[Any]:
    """A time column as seconds since the epoch, computed by the database: no datetime objects
    for 100,000 rows. SQLite keeps UTC text ("2026-03-27 15:00:00.000000"; julianday reads it to
    the millisecond), PostgreSQL a timestamptz. An unset time is -1."""
    if dialect == "sqlite":
        seconds = (func.julianday(column) - 2440587.5) * 86400.0
    else:
        seconds = cast(func.extract("epoch", column), Float)
    # -1 rather than NULL: numpy takes a column of floats in one go (figures.CaseRow).
    return func.coalesce(seconds, -1.0)


def _columns(dialect: str) -> tuple[Any, ...]:
    times = (Case.received_at, Case.ack_due, Case.acknowledged_at, Case.assessment_due,
             Case.assessed_at, Case.resolved_at, Case.closed_at)
    return (
        Case.id, Case.status,
        # The flags are a JSON list; asking the database spares decoding 100,000 of them.
        cast(Case.flags, Text).like('%"automatic"%'),
        cast(Case.flags, Text).like('%"imported"%'),
        # "" rather than NULL, for the same reason as the -1 below.
        func.coalesce(Case.close_reason, ""), func.coalesce(Case.severity, ""),
        *(_epoch(t, dialect) for t in times),
    )


def case_rows(session: Session, calendar: BusinessCalendar, period: Period) -> Iterator[CaseRow]:
    """The cases received in ``period`` (local dates), in no particular order."""
    start = calendar.start_of_day(period.since)
    end = calendar.start_of_day(period.until + timedelta(days=1))
    dialect = session.get_bind().dialect
    stmt = (select(*_columns(dialect.name))
            .where(Case.received_at >= start, Case.received_at < end)
            .execution_options(yield_per=_BATCH))
    make = CaseRow._make
    connection = session.connection()
    if dialect.name == "sqlite":
        # The driver's own cursor: SQLAlchemy's result rows cost as much again as reading
        # them, and these are plain values. The statement is the one above, compiled; its two
        # times are bound as SQLAlchemy stores them on SQLite (naive UTC text).
        compiled = stmt.compile(dialect=dialect)
        values = {name: _sqlite_time(value) for name, value in compiled.params.items()}
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(str(compiled), [values[n] for n in compiled.positiontup or ()])
            while batch := cursor.fetchmany(_BATCH):
                for row in batch:
                    yield make(row)
        finally:
            cursor.close()
        return
    for row in connection.execute(stmt):
        yield make(row)


def _sqlite_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


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
