"""The board: cases, the most urgent first, with the filters the team asks for.

Urgency is the running deadline (see ``mailbot.deadlines.watch``): sorting by its due instant puts
the longest-overdue case first, then the other overdue ones, then those at risk, then the rest;
cases that run no deadline (resolved, closed, automatic mail) come last, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, or_, select
from sqlalchemy.orm import Session

from mailbot.cases import vocabulary
from mailbot.cases.models import Case, Message
from mailbot.cases.views import subject_of
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import (
    at_risk_filter,
    deadline_of,
    overdue_filter,
    running_due_expression,
    stage_at,
)

BOARD_LIMIT = 100
OPEN = "open"  # the board's default status filter: new, acknowledged and assessed together
ALL = "all"


@dataclass(frozen=True)
class BoardQuery:
    status: str = OPEN  # a status, OPEN or ALL
    flag: str = ""
    severity: str = ""
    search: str = ""  # a case id, a reporter's address or name, or a CVE id

    @classmethod
    def from_params(cls, params: Any) -> BoardQuery:
        status = params.get("status", OPEN)
        if status not in (OPEN, ALL, *vocabulary.STATUSES):
            status = OPEN
        severity = params.get("severity", "")
        return cls(
            status=status,
            flag=params.get("flag", "")[:40],
            severity=severity if severity in vocabulary.SEVERITIES else "",
            search=params.get("q", "").strip()[:320],
        )


@dataclass(frozen=True)
class BoardRow:
    id: str
    status: str
    severity: str | None
    flags: tuple[str, ...]
    reporter: str
    reporter_name: str
    subject: str
    received_at: datetime
    message_count: int
    deadline: str | None  # ack | assessment | resolution
    due: datetime | None
    stage: str | None  # at-risk | overdue | None


@dataclass(frozen=True)
class Board:
    rows: list[BoardRow]
    total: int  # how many cases match, of which at most BOARD_LIMIT are listed


def board(session: Session, query: BoardQuery, calendar: BusinessCalendar,
          policy: PolicySettings, now: datetime) -> Board:
    due = running_due_expression()
    count = (select(func.count(Message.id)).where(Message.case_id == Case.id)
             .correlate(Case).scalar_subquery())
    stmt = select(Case, count)
    conditions: list[ColumnElement[bool]] = []
    if query.status == OPEN:
        conditions.append(Case.status.in_(vocabulary.OPEN_STATUSES))
    elif query.status != ALL:
        conditions.append(Case.status == query.status)
    if query.severity:
        conditions.append(Case.severity == query.severity)
    if query.flag:
        # flags is a JSON list; its text form holds each flag in double quotes.
        conditions.append(cast(Case.flags, String).contains(f'"{query.flag}"', autoescape=True))
    if query.search:
        term = query.search
        conditions.append(or_(
            Case.id == term.upper(),
            func.lower(Case.reporter).contains(term.lower(), autoescape=True),
            func.lower(Case.reporter_name).contains(term.lower(), autoescape=True),
            cast(Case.cve, String).contains(f'"{term.upper()}"', autoescape=True),
        ))
    stmt = stmt.where(*conditions).order_by(
        due.is_(None), due, Case.received_at.desc(), Case.id).limit(BOARD_LIMIT)
    rows = []
    for case, n in session.execute(stmt):
        deadline = deadline_of(case)
        stage = (stage_at(deadline.due, now, calendar, policy.at_risk_business_days)
                 if deadline else None)
        rows.append(BoardRow(
            id=case.id, status=case.status, severity=case.severity, flags=tuple(case.flags),
            reporter=case.reporter, reporter_name=case.reporter_name,
            subject=subject_of(case),
            received_at=case.received_at, message_count=n,
            deadline=deadline.name if deadline else None, due=deadline.due if deadline else None,
            stage=stage))
    total = session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0
    return Board(rows=rows, total=total)


@dataclass(frozen=True)
class Summary:
    """The figures at the top of the board and on the report page."""

    open: int
    at_risk: int
    overdue: int
    by_status: dict[str, int]


def summary(session: Session, calendar: BusinessCalendar, policy: PolicySettings,
            now: datetime) -> Summary:
    by_status = {status: n for status, n in session.execute(
        select(Case.status, func.count()).group_by(Case.status))}
    at_risk = session.scalar(select(func.count()).select_from(Case).where(
        at_risk_filter(calendar, policy, now))) or 0
    overdue = session.scalar(select(func.count()).select_from(Case).where(
        overdue_filter(now))) or 0
    return Summary(
        open=sum(by_status.get(s, 0) for s in vocabulary.OPEN_STATUSES),
        at_risk=at_risk, overdue=overdue,
        by_status={s: by_status.get(s, 0) for s in vocabulary.STATUSES})


def known_flags(session: Session) -> list[str]:
    """Every flag some case carries, for the filter's choices (a few hundred cases at most are
    read: flags are a short fixed vocabulary, so the first cases of each kind show them all)."""
    seen: set[str] = set()
    for flags in session.scalars(select(Case.flags).where(cast(Case.flags, String) != "[]")
                                 .order_by(Case.received_at.desc()).limit(500)):
        seen.update(flags)
    return sorted(seen)
