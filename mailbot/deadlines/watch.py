"""The deadline watch: at risk and overdue cases -> reminders and escalations, each exactly once.

Decide, then act. Which deadline a case is running (``running_deadline``) and where it stands at a
given instant (``stage_at``) are pure functions of the case's fields, the calendar and the time.
``watch`` selects the few cases that could need a reminder with SQL, asks those functions, and
queues the mail.

- **Which deadline**: a ``new`` case runs its acknowledgement deadline, an ``acknowledged`` one its
  assessment deadline, an ``assessed`` one its target resolution date. Resolved and closed cases,
  and cases without a due value (automatic mail is promised nothing), run none.
- **Which stage**: at risk from the start of the last ``at_risk_business_days`` business days up to
  and including the due instant; overdue after it.
- **When**: at-risk reminders only within business hours (a reminder at 3 a.m. helps nobody);
  overdue escalations at once.
- **Exactly once**: the ``reminders`` row (unique per case, deadline and stage) and the outbox row
  are written in one transaction. The row goes in inside a savepoint, so when another instance got
  there first, its unique constraint refuses ours (on PostgreSQL after waiting for the other
  transaction to end) and we skip that reminder alone.
- **Fast**: only candidates are read: per deadline, cases in its status, not yet reminded for that
  stage, whose due is in the past or inside the at-risk horizon. ``cases.reminder_rank`` records
  how far the watch has got with a case, so one (status, reminder_rank, due) index per deadline
  finds the candidates without touching the cases already escalated, however many pile up.

Each case keeps the deadline it was promised: the due values are computed once, when the clock
starts (see the intake and the case service), so a later policy change only affects new clocks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailbot.cases import vocabulary
from mailbot.cases.models import Case, Event, Message, Outbox, Reminder, flagged
from mailbot.cases.views import event_detail
from mailbot.config import PolicySettings, Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.entries import Deadline, DigestEntry, PossibleDuplicate
from mailbot.deadlines.oncall import people_to_tell
from mailbot.outbox import OutgoingMail, enqueue
from mailbot.outgoing import Writer, digest, digest_message_id, reminder
from mailbot.store import Database

__all__ = [
    "ACK",
    "ASSESSMENT",
    "AT_RISK",
    "OVERDUE",
    "RESOLUTION",
    "Deadline",
    "DigestEntry",
    "at_risk_case_ids",
    "at_risk_filter",
    "at_risk_horizon",
    "digest_due",
    "overdue_case_ids",
    "overdue_filter",
    "reminder_may_go",
    "reminder_rank",
    "running_deadline",
    "running_due_expression",
    "stage_at",
    "watch",
]

log = logging.getLogger("mailbot.deadlines")

ACK = "ack"
ASSESSMENT = "assessment"
RESOLUTION = "resolution"
AT_RISK = "at-risk"
OVERDUE = "overdue"

# The deadline each open status runs, and the column that holds it.
_RUNNING: tuple[tuple[str, str, InstrumentedAttribute[datetime | None]], ...] = (
    (vocabulary.NEW, ACK, Case.ack_due),
    (vocabulary.ACKNOWLEDGED, ASSESSMENT, Case.assessment_due),
    (vocabulary.ASSESSED, RESOLUTION, Case.resolution_due),
)
# A digest lists this many cases at most; the rest are counted.
DIGEST_LIMIT = 200


# ---------------------------------------------------------------------------------------------
# Decisions (pure)


def running_deadline(
    status: str,
    *,
    ack_due: datetime | None,
    assessment_due: datetime | None,
    resolution_due: datetime | None,
) -> Deadline | None:
    """The deadline a case in ``status`` is running, or None (closed, resolved, or no due)."""
    due_of = {ACK: ack_due, ASSESSMENT: assessment_due, RESOLUTION: resolution_due}
    for running_status, name, _column in _RUNNING:
        if status == running_status:
            due = due_of[name]
            return Deadline(name, due) if due is not None else None
    return None


def deadline_of(case: Case) -> Deadline | None:
    return running_deadline(
        case.status,
        ack_due=case.ack_due,
        assessment_due=case.assessment_due,
        resolution_due=case.resolution_due,
    )


def stage_at(
    due: datetime, now: datetime, calendar: BusinessCalendar, at_risk_business_days: int
) -> str | None:
    """``overdue`` after ``due``, ``at-risk`` from the start of its at-risk window, else None."""
    if now > due:
        return OVERDUE
    if now >= calendar.at_risk_from(due, at_risk_business_days):
        return AT_RISK
    return None


def reminder_may_go(stage: str, now: datetime, calendar: BusinessCalendar) -> bool:
    """Escalations go at once; at-risk reminders wait for business hours."""
    return stage == OVERDUE or calendar.in_business_hours(now)


def at_risk_horizon(
    calendar: BusinessCalendar, now: datetime, at_risk_business_days: int
) -> datetime:
    """The instant before which every due is at risk or overdue at ``now``, and after which none.

    A due on local day D is at risk once the last N business days up to D have begun, that is
    when fewer than N business days lie after today and up to D: D comes before the N-th business
    day after today. So the horizon is the start of that day (with N = 0, the window is the due
    instant itself).
    """
    if at_risk_business_days == 0:
        return now + timedelta(microseconds=1)
    first_safe = calendar.business_days_after(calendar.local_date(now), at_risk_business_days)
    return calendar.start_of_day(first_safe)


# ---------------------------------------------------------------------------------------------
# Candidate selection (SQL)

_DEADLINE_ORDER = (ACK, ASSESSMENT, RESOLUTION)
_STAGE_ORDER = (AT_RISK, OVERDUE)


def reminder_rank(deadline: str, stage: str) -> int:
    """The place of a reminder in a case's life: ack at-risk 1, ack overdue 2, ... resolution
    overdue 6. A case only ever moves forward through its deadlines (reopening returns it to the
    furthest status it had reached), so ``cases.reminder_rank`` (the highest rank reminded) only
    grows, and every reminder still to come for the running deadline ranks above it."""
    return 1 + 2 * _DEADLINE_ORDER.index(deadline) + _STAGE_ORDER.index(stage)


@dataclass(frozen=True)
class _Candidate:
    case: Case
    deadline: Deadline
    stage: str


def _due_window(
    column: InstrumentedAttribute[datetime | None], stage: str, now: datetime, horizon: datetime
) -> ColumnElement[bool]:
    if stage == OVERDUE:
        return column < now
    return and_(column >= now, column < horizon)


def _not_reminded(name: str, stage: str) -> ColumnElement[bool]:
    # An IN list rather than "<": the (status, reminder_rank, due) index then serves the due
    # range too. The rank is a filter only; the reminders table's unique constraint stays the
    # guarantee (see _queue_reminder).
    return Case.reminder_rank.in_(range(reminder_rank(name, stage)))


def _candidates(
    session: Session,
    calendar: BusinessCalendar,
    policy: PolicySettings,
    now: datetime,
    stages: Sequence[str],
    *,
    unreminded_only: bool,
) -> list[_Candidate]:
    horizon = at_risk_horizon(calendar, now, policy.at_risk_business_days)
    found: list[_Candidate] = []
    for stage in stages:
        for status, name, column in _RUNNING:
            stmt = select(Case).where(
                Case.status == status,
                _due_window(column, stage, now, horizon),
                # History is never chased: whatever was promised then, nobody is reminded now.
                ~flagged(vocabulary.IMPORTED),
            )
            if unreminded_only:
                stmt = stmt.where(_not_reminded(name, stage))
            for row in session.scalars(stmt):
                deadline = deadline_of(row)
                # The SQL window is the same rule; the pure function has the last word.
                if (
                    deadline is not None
                    and stage_at(deadline.due, now, calendar, policy.at_risk_business_days) == stage
                ):
                    found.append(_Candidate(row, deadline, stage))
    # One order for every instance, so that two of them on PostgreSQL wait on each other's
    # reminder rows in the same order and never deadlock.
    found.sort(key=lambda c: (c.case.id, c.deadline.name, c.stage))
    return found


def at_risk_case_ids(
    session: Session, calendar: BusinessCalendar, policy: PolicySettings, now: datetime
) -> list[str]:
    """The open cases whose running deadline is at risk at ``now`` (reminded or not)."""
    found = _candidates(session, calendar, policy, now, (AT_RISK,), unreminded_only=False)
    return [c.case.id for c in found]


def overdue_case_ids(session: Session, now: datetime) -> list[str]:
    """The open cases whose running deadline has passed at ``now`` (escalated or not)."""
    return sorted(session.scalars(select(Case.id).where(overdue_filter(now))))


def overdue_filter(now: datetime) -> ColumnElement[bool]:
    """A WHERE clause on ``cases`` for ``overdue_case_ids``, for queries of their own (a list
    of tens of thousands of ids would exceed PostgreSQL's 65,535 bind parameters)."""
    return or_(*(and_(Case.status == status, column < now) for status, _name, column in _RUNNING))


def at_risk_filter(
    calendar: BusinessCalendar, policy: PolicySettings, now: datetime
) -> ColumnElement[bool]:
    """A WHERE clause on ``cases`` that selects exactly the ``at_risk_case_ids``."""
    horizon = at_risk_horizon(calendar, now, policy.at_risk_business_days)
    return or_(
        *(
            and_(Case.status == status, _due_window(column, AT_RISK, now, horizon))
            for status, _name, column in _RUNNING
        )
    )


# ---------------------------------------------------------------------------------------------
# The watch


class Running(Protocol):
    """What the watch needs of a running mailbot (the app has it; the watch never imports it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def calendar(self) -> BusinessCalendar: ...
    @property
    def db(self) -> Database: ...
    @property
    def writer(self) -> Writer: ...

# Reminders committed per transaction: a backlog (the first run over an imported archive) never
# holds one long transaction, and the outbox can start sending while the watch goes on.
BATCH_SIZE = 100


def watch(app: Running, now: datetime) -> int:
    """Queue the reminders and escalations due at ``now``; return how many were queued."""
    calendar, settings = app.calendar, app.settings
    stages = [s for s in (OVERDUE, AT_RISK) if reminder_may_go(s, now, calendar)]
    with app.db.session() as session:
        candidates = _candidates(
            session, calendar, settings.policy, now, stages, unreminded_only=True
        )
    if not candidates:
        return 0
    recipients = people_to_tell(settings, now, calendar.tz)
    if not recipients:
        log.error(
            "%d reminder(s) due but nobody to send them to: set [oncall] addresses "
            "or rotation, or [team] addresses",
            len(candidates),
        )
        return 0
    queued = 0
    for first in range(0, len(candidates), BATCH_SIZE):
        with app.db.session() as session:
            for candidate in candidates[first : first + BATCH_SIZE]:
                if _queue_reminder(app, session, candidate, recipients, now):
                    queued += 1
    if queued:
        log.info("queued %d reminder(s) for %s", queued, ", ".join(recipients))
    return queued


def _queue_reminder(
    app: Running, session: Session, candidate: _Candidate, recipients: list[str], now: datetime
) -> bool:
    case_, deadline, stage = candidate.case, candidate.deadline, candidate.stage
    try:
        mail = reminder(
            app.writer,
            case_,
            deadline=deadline.name,
            due=deadline.due,
            stage=stage,
            recipients=recipients,
            report_message_id=_report_message_id(session, case_.id),
            now=now,
        )
    except Exception:  # one case whose mail cannot be built must not hold up the others
        log.exception("cannot build the %s %s reminder for %s", deadline.name, stage, case_.id)
        return False
    rank = reminder_rank(deadline.name, stage)
    try:
        with session.begin_nested():
            session.add(
                Reminder(
                    case_id=case_.id,
                    deadline=deadline.name,
                    stage=stage,
                    due=deadline.due,
                    sent_to=", ".join(recipients)[:320],
                    created_at=now,
                )
            )
            # The unique constraint speaks here: another instance's row makes this one fail.
            session.flush()
            _raise_rank(session, case_.id, rank)
            enqueue(session, mail, now)
            session.flush()
    except IntegrityError:
        # Another instance queued it first (and raised the rank in the same transaction), or the
        # rank lagged behind the reminders table: catch it up so the case is skipped next time.
        log.debug("%s: %s %s was already queued", case_.id, deadline.name, stage)
        _raise_rank(session, case_.id, rank)
        return False
    log.info(
        "%s: %s %s for the %s deadline due %s",
        case_.id,
        mail.kind,
        mail.message_id,
        deadline.name,
        deadline.due.isoformat(),
    )
    return True


def _raise_rank(session: Session, case_id: str, rank: int) -> None:
    stmt = update(Case).where(Case.id == case_id, Case.reminder_rank < rank)
    session.execute(stmt.values(reminder_rank=rank))


def _report_message_id(session: Session, case_id: str) -> str | None:
    """The Message-ID of the case's first inbound message, to thread reminders under it."""
    stmt = (
        select(Message.message_id)
        .where(Message.case_id == case_id, Message.direction == "in", Message.message_id != "")
        .order_by(Message.id)
        .limit(1)
    )
    return session.scalar(stmt)


# ---------------------------------------------------------------------------------------------
# The daily digest


def digest_due(app: Running, now: datetime) -> int:
    """Queue today's digest to on-call if it is time and none went yet; return 1 or 0.

    One digest per local business day, from ``policy.digest_time`` on (so a daemon that was down
    at that time sends it when it comes back). Its Message-ID is derived from the day, and the
    outbox's unique Message-ID keeps it to one even with several instances.
    """
    calendar, settings = app.calendar, app.settings
    at = settings.policy.digest_time
    local = now.astimezone(calendar.tz)
    if at is None or not calendar.is_business_day(local.date()) or local.time() < at:
        return 0
    day = local.date()
    message_id = digest_message_id(app.writer, day)
    with app.db.session() as session:
        if session.scalar(select(Outbox.id).where(Outbox.message_id == message_id)) is not None:
            return 0
        recipients = people_to_tell(settings, now, calendar.tz)
        if not recipients:
            log.error("the digest is due but nobody is on call: set [oncall] or [team] addresses")
            return 0
        entries, total = open_cases_by_deadline(session, calendar, settings.policy, now)
        mail = digest(
            app.writer,
            day=day,
            entries=entries,
            total=total,
            recipients=recipients,
            now=now,
            withheld=unanswered_withheld(session),
            held_back=receipts_held_back(session, now),
            duplicates=possible_duplicates(session),
        )
        if not _enqueue_once(session, mail, now):
            return 0
    log.info(
        "queued the digest for %s (%d open case(s)) to %s",
        day.isoformat(),
        total,
        ", ".join(recipients),
    )
    return 1


def receipts_held_back(session: Session, now: datetime) -> int:
    """Receipts that ``policy.receipts_per_hour`` held back in the 24 hours before ``now``."""
    return session.scalar(
        select(func.count(Event.id)).where(
            Event.action == vocabulary.RECEIPT_HELD_BACK,
            Event.at > now - timedelta(days=1), Event.at <= now,
        )
    ) or 0


def _enqueue_once(session: Session, mail: OutgoingMail, now: datetime) -> bool:
    try:
        with session.begin_nested():
            row = enqueue(session, mail, now)
            session.flush()
    except IntegrityError:
        return False
    return row is not None


def open_cases_by_deadline(
    session: Session,
    calendar: BusinessCalendar,
    policy: PolicySettings,
    now: datetime,
    *,
    limit: int = DIGEST_LIMIT,
) -> tuple[list[DigestEntry], int]:
    """Open cases, soonest running deadline first (none last), at most ``limit``; and how many."""
    due = running_due_expression()
    # Imported history waits on nobody: it would bury the cases that do.
    open_ = and_(Case.status.in_(vocabulary.OPEN_STATUSES), ~flagged(vocabulary.IMPORTED))
    stmt = select(Case).where(open_).order_by(due.is_(None), due, Case.id).limit(limit)
    entries = []
    for row in session.scalars(stmt):
        deadline = deadline_of(row)
        stage = (
            stage_at(deadline.due, now, calendar, policy.at_risk_business_days)
            if deadline
            else None
        )
        entries.append(DigestEntry(row, deadline, stage))
    total = session.scalar(select(func.count()).select_from(Case).where(open_)) or 0
    return entries, total


def unanswered_withheld(session: Session, *, limit: int = DIGEST_LIMIT) -> list[Case]:
    """New cases whose receipt was withheld as too late: nobody has answered the reporter yet."""
    stmt = (
        select(Case)
        .where(Case.status == vocabulary.NEW, flagged(vocabulary.RECEIPT_WITHHELD))
        .order_by(Case.received_at, Case.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def possible_duplicates(session: Session, *, limit: int = DIGEST_LIMIT
                        ) -> list[PossibleDuplicate]:
    """Open cases flagged possible-duplicate, each with the case(s) its report read like."""
    stmt = (
        select(Event)
        .join(Case, Case.id == Event.case_id)
        .where(Case.status.in_(vocabulary.OPEN_STATUSES),
               flagged(vocabulary.POSSIBLE_DUPLICATE), ~flagged(vocabulary.IMPORTED),
               Event.action == vocabulary.POSSIBLE_DUPLICATE)
        .order_by(Event.case_id, Event.id)
        .limit(limit)
    )
    found = []
    for event in session.scalars(stmt):
        detail = event_detail(event)  # sealed; an unreadable one names no other case
        found.append(PossibleDuplicate(event.case_id, str(detail.get("case", "")),
                                       float(detail.get("similarity") or 0.0)))
    return found


def running_due_expression() -> ColumnElement[Any]:
    """The due of the deadline each case is running, as SQL (NULL when it runs none)."""
    return sql_case(
        *((Case.status == status, column) for status, _name, column in _RUNNING),
        else_=None,
    )
