"""The messages mailbot writes: receipts to reporters, alerts to the team.

Each builder renders a template, composes safe bytes and returns an ``OutgoingMail`` for the
outbox. Message-IDs are derived from what caused the message, so building the same message twice
gives the same id and the outbox keeps one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.cases.models import Case
from mailbot.config import Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.mail.compose import compose, make_message_id
from mailbot.mail.message import InboundMessage
from mailbot.outbox import OutgoingMail
from mailbot.templates import render


@dataclass(frozen=True)
class Writer:
    """What every builder needs: settings, the calendar and the token key."""

    settings: Settings
    calendar: BusinessCalendar
    token_key: bytes

    @property
    def domain(self) -> str:
        return self.settings.own_address.rpartition("@")[2] or "localhost"

    def local_time(self, at: datetime | None) -> str:
        if at is None:
            return "(none)"
        local = at.astimezone(self.calendar.tz)
        return local.strftime("%A %d %B %Y, %H:%M %Z")

    def message_id(self, case_id: str, kind: str, cause: str) -> str:
        nonce = hashlib.sha256(cause.encode()).hexdigest()[:12]
        return make_message_id(case_id, kind, self.token_key, self.domain, nonce)

    def build(
        self,
        *,
        template: str,
        context: Mapping[str, Any],
        case_id: str | None,
        kind: str,
        message_id: str,
        to: list[str],
        envelope_from: str,
        auto_submitted: str,
        now: datetime,
        in_reply_to: str | None = None,
        references: tuple[str, ...] = (),
    ) -> OutgoingMail:
        rendered = render(template, context, directory=self.settings.templates.directory)
        data = compose(
            from_address=self.settings.smtp.from_address,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=list(references),
            auto_submitted=auto_submitted,
            date=now,
        )
        return OutgoingMail(case_id=case_id, kind=kind, message_id=message_id,
                            envelope_from=envelope_from, recipients=to,
                            subject=rendered.subject, data=data)


def receipt(writer: Writer, case: Case, msg: InboundMessage, dedupe: str,
            now: datetime) -> OutgoingMail:
    """The receipt to the report's sender: threaded under the report, never echoing its body."""
    policy = writer.settings.policy
    references = msg.references[-20:]
    if msg.message_id:
        references = (*references, msg.message_id)
    return writer.build(
        template="receipt",
        context={
            "case_id": case.id,
            "subject": case.subject,
            "reporter_name": case.reporter_name,
            "ack_due_local": writer.local_time(case.ack_due),
            "ack_business_days": policy.ack_business_days,
            "assessment_business_days": policy.assessment_business_days,
            "team_name": writer.settings.smtp.from_address,
        },
        case_id=case.id,
        kind="receipt",
        message_id=writer.message_id(case.id, "receipt", dedupe),
        to=[case.reporter],
        envelope_from="",  # RFC 3834: a bounced receipt can never loop back
        auto_submitted="auto-replied",
        now=now,
        in_reply_to=msg.message_id or None,
        references=references,
    )


def alert(writer: Writer, *, recipients: list[str], case_id: str | None, what: str,
          details: Mapping[str, Any], cause: str, now: datetime) -> OutgoingMail | None:
    """Tell a person that something needs them (a quarantined message, a failed send)."""
    if not recipients:
        return None
    return writer.build(
        template="alert",
        context={"what": what, "case_id": case_id or "", "details": dict(details)},
        case_id=case_id,
        kind="alert",
        message_id=writer.message_id(case_id or "mailbot", "alert", cause),
        to=recipients,
        envelope_from=writer.settings.own_address,
        auto_submitted="auto-generated",
        now=now,
    )
