"""What the reporter may do by mail, and when the team has kept them informed.

A reporter's own commands are few: how they wish to be credited (``/credit "Name, Org"``,
``/credit none``, ``/anonymous``), never a status change. They are read from the sender's own
text only, and accepted only when both hold:

- the message comes from the case's reporter address, and
- it threads to the case by our token: its In-Reply-To or References hold one of our own
  Message-IDs whose token verifies for this case. A subject tag, or a Message-ID of the
  reporter's own, is not enough: both are easy to write for anyone who knows them.

Any other command line (from a stranger, unthreaded, or a status change) is refused and the
refusal recorded on the case; nothing is mailed about it. Words that are not commands at all
(a path such as ``/etc/passwd`` at the top of a report) are ordinary text.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from mailbot.cases import service
from mailbot.cases.commands import NAMES, REPORTER_NAMES, Command, apply_credit, parse_commands
from mailbot.cases.models import Case, Message
from mailbot.cases.service import Actor, TransitionRefused
from mailbot.cases.vocabulary import ASSESSED
from mailbot.intake.classify import Classification
from mailbot.mail.compose import verify_message_id
from mailbot.mail.message import InboundMessage

log = logging.getLogger("mailbot.intake")

REFUSED = "reporter-command-refused"


def threads_by_token(msg: InboundMessage, case_id: str, token_key: bytes) -> bool:
    """In-Reply-To or References hold one of our Message-IDs whose token names ``case_id``."""
    return any(verify_message_id(mid, token_key) == case_id
               for mid in (*msg.in_reply_to, *msg.references))


def apply_reporter_commands(
    session: Session, case: Case, msg: InboundMessage, facts: Classification, message: Message,
    *, token_key: bytes, source: str,
) -> None:
    """Apply (or refuse and record) the credit commands at the top of a non-team message."""
    if facts.from_team or facts.untrusted_team or facts.own.yes or facts.automatic.yes:
        return
    commands = [c for c in parse_commands(msg.own_text) if c.name in NAMES]
    if not commands:
        return
    sender = message.from_addr
    actor = Actor(sender or "unknown", source)
    at = message.received_at
    refusal = _refusal(case, msg, sender, token_key)
    for command in commands:
        reason = refusal or _reporter_may(command)
        if reason is None:
            try:
                with session.begin_nested():
                    apply_credit(session, case, command, actor, at, by_reporter=True)
            except TransitionRefused as exc:
                reason = str(exc)
        if reason is None:
            service.record(session, case, actor, "reporter-command", {"command": command.line},
                           at)
            continue
        service.record(session, case, actor, REFUSED,
                       {"command": command.line, "from": sender, "reason": reason}, at)
        log.info("%s: a /%s from outside the team refused", case.id,
                 command.name if command.name in NAMES else "(unknown)")


def _refusal(case: Case, msg: InboundMessage, sender: str, token_key: bytes) -> str | None:
    if not sender or sender != case.reporter:
        return "only the case's reporter may say how they are credited"
    if not threads_by_token(msg, case.id, token_key):
        return "a reporter's command counts only in a reply to our mail about this case"
    return None


def _reporter_may(command: Command) -> str | None:
    if command.name in REPORTER_NAMES:
        return None
    return ("a reporter may only say how they wish to be credited (/credit, /anonymous); "
            "the team decides the rest")


def note_reporter_informed(case: Case, update_due: datetime | None) -> None:
    """The team's mail reached the reporter: the update clock starts again, to ``update_due``."""
    if case.status == ASSESSED and update_due is not None:
        case.update_due = update_due
