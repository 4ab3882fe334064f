"""The watch over the rest of the disclosure promise: each reminder exactly once.

- **Disclosure coming up** (``disclosure-reminder``, within business hours): from the start of the
  ``policy.disclosure_warning_business_days``-th business day before a case's disclosure date,
  unless the case is closed; 0 sends none.
- **Disclosure date reached** (``disclosure-escalation``, at once): the date has arrived (its
  local 00:00) and the case is neither resolved nor closed.
- **Update the reporter** (``update-reminder``, within business hours): an assessed case whose
  ``update_due`` has passed, that is, the team has mailed the reporter nothing for
  ``policy.update_interval_business_days`` business days. Each reminder moves ``update_due`` one
  interval on, so it comes once per interval; the team's mail to the reporter moves it too.

Exactly once: a ``reminders`` row (unique per case, deadline and stage) goes in with the outbox
row, in a savepoint; the stage names the date it is about, so a new disclosure date (or the next
update interval) gets reminders of its own. Imported history is never chased.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailbot.cases import vocabulary
from mailbot.cases.models import Case, Message, Reminder, flagged
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.clocks import disclosure_arrives, disclosure_warn_from, update_clock
from mailbot.deadlines.oncall import people_to_tell
from mailbot.deadlines.watch import Running
from mailbot.outbox import enqueue
from mailbot.outgoing import promise_reminder

log = logging.getLogger("mailbot.deadlines")

DISCLOSURE = "disclosure"
UPDATE = "update"
DISCLOSURE_REMINDER = "disclosure-reminder"
DISCLOSURE_ESCALATION = "disclosure-escalation"
UPDATE_REMINDER = "update-reminder"


@dataclass(frozen=True)
class PromiseDue:
    """One reminder that is due: about which case, which promise, and the date it concerns."""

    case: Case
    kind: str  # DISCLOSURE_REMINDER | DISCLOSURE_ESCALATION | UPDATE_REMINDER
    deadline: str  # the reminders row's deadline: DISCLOSURE | UPDATE
    stage: str  # the reminders row's stage: what it is about, with its date
    due: datetime


def watch_promises(app: Running, now: datetime) -> int:
    """Queue the disclosure and update reminders due at ``now``; return how many."""
    calendar, settings = app.calendar, app.settings
    in_hours = calendar.in_business_hours(now)
    with app.db.session() as session:
        due = disclosures_due(session, calendar, settings.policy, now, in_hours=in_hours)
        if in_hours and settings.policy.update_interval_business_days > 0:
            due += updates_due(session, now)
        due = _not_yet_sent(session, due)
    if not due:
        return 0
    recipients = people_to_tell(settings, now, calendar.tz)
    if not recipients:
        log.error("%d disclosure or update reminder(s) due but nobody to send them to: set "
                  "[oncall] addresses or rotation, or [team] addresses", len(due))
        return 0
    queued = 0
    with app.db.session() as session:
        for item in sorted(due, key=lambda d: (d.case.id, d.kind)):
            queued += _queue(app, session, item, recipients, now)
    if queued:
        log.info("queued %d disclosure or update reminder(s) for %s", queued,
                 ", ".join(recipients))
    return queued


def disclosures_due(
    session: Session, calendar: BusinessCalendar, policy: PolicySettings, now: datetime, *,
    in_hours: bool,
) -> list[PromiseDue]:
    """Disclosure reminders (in business hours) and escalations due at ``now``, sent or not."""
    today = calendar.local_date(now)
    found: list[PromiseDue] = []
    arrived = select(Case).where(Case.disclosure_date <= today,
                                 Case.status.in_(vocabulary.OPEN_STATUSES),
                                 ~flagged(vocabulary.IMPORTED))
    for case in session.scalars(arrived):
        assert case.disclosure_date is not None  # the WHERE says so
        arrives = disclosure_arrives(calendar, case.disclosure_date)
        if now >= arrives:
            found.append(PromiseDue(case, DISCLOSURE_ESCALATION, DISCLOSURE,
                                    f"reached {case.disclosure_date.isoformat()}", arrives))
    warning = policy.disclosure_warning_business_days
    if not in_hours or warning <= 0:
        return found
    latest = calendar.business_days_after(today, warning)
    coming = select(Case).where(Case.disclosure_date > today, Case.disclosure_date <= latest,
                                Case.status != vocabulary.CLOSED, ~flagged(vocabulary.IMPORTED))
    for case in session.scalars(coming):
        assert case.disclosure_date is not None
        warn_from = disclosure_warn_from(calendar, case.disclosure_date, warning)
        if warn_from <= now < disclosure_arrives(calendar, case.disclosure_date):
            found.append(PromiseDue(case, DISCLOSURE_REMINDER, DISCLOSURE,
                                    f"coming {case.disclosure_date.isoformat()}",
                                    disclosure_arrives(calendar, case.disclosure_date)))
    return found


def updates_due(session: Session, now: datetime) -> list[PromiseDue]:
    """Assessed cases whose reporter has waited ``update_interval_business_days`` for news."""
    stmt = select(Case).where(Case.status == vocabulary.ASSESSED, Case.update_due < now,
                              ~flagged(vocabulary.IMPORTED))
    found = []
    for case in session.scalars(stmt):
        assert case.update_due is not None
        found.append(PromiseDue(case, UPDATE_REMINDER, UPDATE,
                                f"due {case.update_due.date().isoformat()}", case.update_due))
    return found


def _not_yet_sent(session: Session, due: list[PromiseDue]) -> list[PromiseDue]:
    if not due:
        return []
    rows = session.execute(
        select(Reminder.case_id, Reminder.deadline, Reminder.stage)
        .where(Reminder.case_id.in_({d.case.id for d in due}),
               Reminder.deadline.in_((DISCLOSURE, UPDATE)))
    ).all()
    sent = {tuple(row) for row in rows}
    return [d for d in due if (d.case.id, d.deadline, d.stage) not in sent]


def _queue(
    app: Running, session: Session, item: PromiseDue, recipients: list[str], now: datetime
) -> int:
    case = session.get(Case, item.case.id)
    if case is None:
        return 0
    try:
        mail = promise_reminder(app.writer, case, kind=item.kind, due=item.due,
                                recipients=recipients, stage=item.stage,
                                report_message_id=_report_message_id(session, case.id), now=now)
    except Exception:  # one case whose mail cannot be built must not hold up the others
        log.exception("cannot build the %s for %s", item.kind, case.id)
        return 0
    try:
        with session.begin_nested():
            session.add(Reminder(case_id=case.id, deadline=item.deadline, stage=item.stage,
                                 due=item.due, sent_to=", ".join(recipients)[:320],
                                 created_at=now))
            session.flush()  # another instance's row makes this one fail here
            if item.deadline == UPDATE:
                next_due = update_clock(app.calendar, app.settings.policy)
                case.update_due = next_due(now) if next_due else None
            enqueue(session, mail, now)
            session.flush()
    except IntegrityError:
        log.debug("%s: %s %s was already queued", case.id, item.kind, item.stage)
        return 0
    log.info("%s: %s %s (%s)", case.id, item.kind, mail.message_id, item.stage)
    return 1


def _report_message_id(session: Session, case_id: str) -> str | None:
    return session.scalar(
        select(Message.message_id)
        .where(Message.case_id == case_id, Message.direction == "in", Message.message_id != "")
        .order_by(Message.id).limit(1))

