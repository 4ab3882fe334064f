"""Who takes part in a case, and whose mail counts as reaching the reporter (pure queries).

The participants of a case are its reporter (the report's From, and the Reply-To addresses of the
report that are outside the house), the trusted team, and mailbot itself. Anyone else who joins
the thread by its Message-ID is a non-participant: kept, and flagged.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Message
from mailbot.config import Settings
from mailbot.intake.classify import Classification
from mailbot.mail.message import InboundMessage


def first_report(session: Session, case: Case) -> Message | None:
    """The case's first inbound message: the report."""
    return session.scalars(
        select(Message)
        .where(Message.case_id == case.id, Message.direction == "in")
        .order_by(Message.id)
        .limit(1)
    ).first()


def reaches_reporter(
    session: Session, case: Case, msg: InboundMessage, settings: Settings
) -> bool:
    """The reporter is among the recipients: their address, or the Reply-To of their report
    (mail clients answer there) when that is outside the house (``outside_aliases``)."""
    if not case.reporter:
        return False
    recipients = {a.addr for a in (*msg.to, *msg.cc)}
    if case.reporter in recipients:
        return True
    report = first_report(session, case)
    if report is None:
        return False
    return bool(recipients & outside_aliases(report.details.get("reply_to", []), settings))


def outside_aliases(reply_to: list[str], settings: Settings) -> set[str]:
    """The report's Reply-To addresses that may stand for the reporter.

    Not the mailbox, a team address or domain, an on-call address, nor any address in the
    mailbox's own domain: a reporter who names one of those would make the team's internal mail
    (to on-call, to a colleague) look like an answer to them, and stop the clock."""
    mailbox = (settings.own_address.lower(), settings.mailbox.username.lower())
    house = {*mailbox,
             *(a.strip().lower() for a in settings.team.addresses),
             *(a.strip().lower() for a in settings.oncall.addresses),
             *(a.strip().lower() for a in settings.oncall.rotation)}
    domains = {d.strip().lstrip("@").rstrip(".").lower() for d in settings.team.domains}
    domains |= {a.rpartition("@")[2] for a in mailbox if "@" in a}
    return {addr for addr in reply_to
            if isinstance(addr, str) and addr not in house
            and addr.rpartition("@")[2] not in domains}


def not_a_participant(
    session: Session, case: Case, msg: InboundMessage, facts: Classification
) -> bool:
    """The message comes from someone outside the case: not the reporter (nor their Reply-To),
    not the trusted team, not mailbot. Mail that claims the team without proof is flagged as
    such already. Automatic mail is no exception: an Auto-Submitted field is easy to add."""
    if facts.from_team or facts.own.yes or facts.untrusted_team:
        return False
    sender = msg.sender.addr if msg.sender else ""
    if sender and sender == case.reporter:
        return False
    report = first_report(session, case)
    aliases = report.details.get("reply_to", []) if report is not None else []
    return not (sender and sender in aliases)
