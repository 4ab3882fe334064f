"""The reporter's notice when the team resolves or closes their case by a command.

It goes through the outbox like a receipt and under the same rules: only to a case that was
promised an answer (a report, not automatic mail, the team's own thread or imported history),
only to the reporter's From address, with a null envelope sender, threaded under the report,
encrypted when mailbot holds the reporter's key. ``quiet`` on the command sends none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases import service, vocabulary
from mailbot.cases.models import Case, Message
from mailbot.cases.service import Actor
from mailbot.mail.compose import clean_address
from mailbot.outbox import enqueue
from mailbot.outgoing import Writer, status_notice

NOTICE = "notice"


def queue_status_notice(session: Session, case: Case, writer: Writer, now: datetime) -> None:
    """Queue the notice for ``case``'s new status, or record why none goes."""
    reason = why_no_notice(case)
    if reason is not None:
        service.record(session, case, Actor("mailbot", "notice"), "no-notice",
                       {"reason": reason}, now)
        return
    report = session.scalars(
        select(Message).where(Message.case_id == case.id, Message.direction == "in")
        .order_by(Message.id).limit(1)).first()
    report_id = report.message_id if report is not None and report.message_id else None
    enqueue(session, status_notice(writer, case, report_message_id=report_id, now=now), now)


def why_no_notice(case: Case) -> str | None:
    if case.status not in (vocabulary.RESOLVED, vocabulary.CLOSED):
        return f"{case.status} is no resolution"
    if case.ack_due is None or vocabulary.IMPORTED in case.flags:
        return "the case was never promised an answer (automatic mail, the team, or history)"
    if not case.reporter:
        return "no reporter address"
    try:
        clean_address(case.reporter)
    except ValueError:
        return f"{case.reporter} cannot be written as a recipient"
    return None
