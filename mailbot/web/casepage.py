"""The data behind a case page: its record, deadlines, events, and every message with its text.

The text of a message is not a column: it is parsed again from the stored raw bytes (inbound) or
from the outbox copy (outbound), through the same parser intake uses, which never raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Event, Message, Outbox
from mailbot.cases.views import (
    UNREADABLE,
    credit_of,
    details_of,
    event_detail,
    opened,
    subject_of,
)
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import deadline_of, stage_at
from mailbot.mail.parse import parse_message
from mailbot.store import RawStore


@dataclass(frozen=True)
class DeadlineLine:
    name: str  # acknowledgement | assessment | resolution
    due: datetime | None
    done_at: datetime | None
    running: bool
    stage: str | None  # at-risk | overdue while running; "late" or "on time" once done


@dataclass(frozen=True)
class MessageView:
    id: int
    direction: str
    kind: str
    from_name: str
    from_addr: str
    to: list[str]
    cc: list[str]
    subject: str
    date: datetime | None
    received_at: datetime
    message_id: str
    flags: list[str]
    trust: str
    correlation: str
    pgp: list[str]  # what PGP said of the message, one finding a line; [] = not PGP mail
    attachments: list[dict[str, Any]]
    text: str
    defects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EventLine:
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]  # opened; {"detail": UNREADABLE} when it does not


@dataclass(frozen=True)
class CasePage:
    case: Case
    subject: str  # opened; UNREADABLE when it does not
    credit: str | None  # opened; UNREADABLE when it does not
    deadlines: list[DeadlineLine]
    events: list[EventLine]
    messages: list[MessageView]


def case_page(session: Session, case: Case, raw_store: RawStore, calendar: BusinessCalendar,
              policy: PolicySettings, now: datetime) -> CasePage:
    messages = list(session.scalars(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)))
    events = list(session.scalars(
        select(Event).where(Event.case_id == case.id).order_by(Event.id)))
    views = [_message_view(session, m, raw_store, policy) for m in messages]
    lines = [EventLine(e.at, e.actor, e.action, event_detail(e)) for e in events]
    subject = subject_of(case)
    return CasePage(case=case, subject=subject, credit=credit_of(case),
                    deadlines=_deadlines(case, calendar, policy, now), events=lines,
                    messages=views)


def _deadlines(case: Case, calendar: BusinessCalendar, policy: PolicySettings,
               now: datetime) -> list[DeadlineLine]:
    running = deadline_of(case)
    lines = []
    for name, key, due, done in (
        ("acknowledgement", "ack", case.ack_due, case.acknowledged_at),
        ("assessment", "assessment", case.assessment_due, case.assessed_at),
        ("resolution", "resolution", case.resolution_due, case.resolved_at),
    ):
        is_running = running is not None and running.name == key
        stage: str | None = None
        if is_running and due is not None:
            stage = stage_at(due, now, calendar, policy.at_risk_business_days)
        elif done is not None and due is not None:
            stage = "late" if done > due else "on time"
        lines.append(DeadlineLine(name, due, done, is_running, stage))
    return lines


def _message_view(session: Session, m: Message, raw_store: RawStore,
                  policy: PolicySettings) -> MessageView:
    details = details_of(m)
    raw = message_bytes(session, m, raw_store, details)
    parsed = parse_message(raw, max_bytes=policy.max_message_bytes) if raw is not None else None
    sender = parsed.sender if parsed else None
    return MessageView(
        id=m.id, direction=m.direction, kind=m.kind, from_name=sender.name if sender else "",
        from_addr=m.from_addr or (sender.addr if sender else ""),
        to=[a.addr for a in parsed.to] if parsed else list(m.to_addrs),
        cc=[a.addr for a in parsed.cc] if parsed else [],
        subject=opened(lambda: m.subject, UNREADABLE, m.case_id, f"message {m.id}'s subject"),
        date=m.date, received_at=m.received_at, message_id=m.message_id,
        flags=list(m.flags), trust=str(details.get("trust", "")),
        correlation=str(details.get("correlation", "")),
        pgp=pgp_findings(details.get("pgp")),
        attachments=list(details.get("attachments", [])),
        text=parsed.text_body if parsed else "",
        defects=[str(d) for d in details.get("defects", [])],
    )


def pgp_findings(pgp: object) -> list[str]:
    """The PGP record of a message (``details["pgp"]``) in words."""
    if not isinstance(pgp, dict):
        return []
    out = []
    if pgp.get("encrypted"):
        out.append("encrypted, " + ("decrypted" if pgp.get("decrypted") else "NOT decrypted"))
    signature = pgp.get("signature")
    if isinstance(signature, dict):
        known = "known key" if signature.get("key_known") else "unknown key"
        out.append(f"signature {signature.get('status', '?')} by "
                   f"{signature.get('fingerprint') or 'an unknown key'} ({known})")
    for other in pgp.get("signatures", [])[:10]:
        covers = other.get("covers", "a part") if isinstance(other, dict) else None
        if covers is None or (covers == "whole message" and isinstance(signature, dict)):
            continue  # the message's own signature is said above
        out.append(f"signature {other.get('status', '?')} by "
                   f"{other.get('fingerprint') or 'an unknown key'} over the {covers}")
    if pgp.get("protected_subject"):
        out.append("the subject came from inside the encrypted part")
    if pgp.get("problem"):
        out.append(f"problem: {pgp['problem']}")
    return out


def message_bytes(session: Session, m: Message, raw_store: RawStore,
                  details: dict[str, Any] | None = None) -> bytes | None:
    """The message as it can be read: the decrypted copy of PGP mail when there is one, else
    its raw bytes (inbound) or the outbox copy (outbound)."""
    readable = (details_of(m) if details is None else details).get("readable_raw_id")
    if isinstance(readable, int):
        return raw_store.get(session, readable)
    if m.raw_id is not None:
        return raw_store.get(session, m.raw_id)
    if m.direction == "out" and m.message_id:
        row = session.scalars(select(Outbox).where(Outbox.message_id == m.message_id)).first()
        return row.data if row is not None else None  # sealed: opened by the model
    return None
