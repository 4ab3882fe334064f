"""Cases as plain data: the stable ``--json`` shapes and the queries behind ``cases list``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Event, Message
from mailbot.cases.vocabulary import POSSIBLE_DUPLICATE
from mailbot.sealing import IntegrityFailure
from mailbot.store import RawStore

log = logging.getLogger("mailbot.cases")

UNREADABLE = "(unreadable: failed its integrity check)"
T = TypeVar("T")


def opened(read: Callable[[], T], fallback: T, case_id: str, what: str) -> T:
    """A sealed value, or ``fallback`` when it does not open: one damaged value is reported
    (naming its case) and the rest of the case, and of the list, is still shown."""
    try:
        return read()
    except IntegrityFailure as exc:
        log.error("case %s: %s does not open: %s", case_id, what, exc)
        return fallback


def credit_of(case: Case) -> str | None:
    """The name to credit (None: none recorded), UNREADABLE when it does not open."""
    fallback: str | None = UNREADABLE
    return opened(lambda: case.credit, fallback, case.id, "the credit")


def case_summary(case: Case, message_count: int) -> dict[str, Any]:
    return {
        "id": case.id,
        "status": case.status,
        "reporter": case.reporter,
        "reporter_name": case.reporter_name,
        "subject": subject_of(case),
        "received_at": _iso(case.received_at),
        "ack_due": _iso(case.ack_due),
        "acknowledged_at": _iso(case.acknowledged_at),
        "assessment_due": _iso(case.assessment_due),
        "assessed_at": _iso(case.assessed_at),
        "severity": case.severity,
        "target_date": case.target_date.isoformat() if case.target_date else None,
        "resolution_due": _iso(case.resolution_due),
        "resolved_at": _iso(case.resolved_at),
        "closed_at": _iso(case.closed_at),
        "close_reason": case.close_reason,
        "duplicate_of": case.duplicate_of,
        "cve": list(case.cve),
        "credit": credit_of(case),
        "credit_consent": case.credit_consent,
        "disclosure_date": case.disclosure_date.isoformat() if case.disclosure_date else None,
        "update_due": _iso(case.update_due),
        "mentioned_tag": case.mentioned_tag or None,
        "message_count": message_count,
        "flags": list(case.flags),
    }


def case_detail(session: Session, case: Case, raw_store: RawStore | None = None,
                max_bytes: int = 26_214_400) -> dict[str, Any]:
    """The case with its messages and events; with ``raw_store``, each message's ``text`` too
    (read back from its stored bytes, for the operator, who holds the key)."""
    messages = list(session.scalars(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)))
    events = list(session.scalars(
        select(Event).where(Event.case_id == case.id).order_by(Event.id)))
    out = case_summary(case, len(messages))
    out["messages"] = [message_view(m) for m in messages]
    if raw_store is not None:
        for view, m in zip(out["messages"], messages, strict=True):
            view["text"] = message_text(session, raw_store, m, max_bytes)
    out["events"] = [event_view(e) for e in events]
    # What the report itself claimed (CVE ids, CVSS vectors with their scores), not the
    # team's decision: see mailbot.intake.claims. A claim that does not open is left out.
    claims = [view["detail"] for e, view in zip(events, out["events"], strict=True)
              if e.action == "reporter-claim" and not unreadable_detail(view["detail"])]
    out["reporter_claim"] = claims[-1] if claims else None
    # Open cases the report read like when it arrived (mailbot.similar); the team decides.
    out["possible_duplicates"] = [
        {"case": e.detail.get("case"), "similarity": e.detail.get("similarity")}
        for e in events if e.action == POSSIBLE_DUPLICATE]
    return out


def message_text(session: Session, raw_store: RawStore, m: Message, max_bytes: int) -> str:
    """The text of a stored message ("" for our own mail and purged messages)."""
    from mailbot.mail.parse import parse_message

    if m.raw_id is None:
        return ""
    raw_id = m.raw_id
    raw = opened(lambda: raw_store.get(session, raw_id), None, m.case_id,
                 f"message {m.id}'s raw bytes")
    if raw is None:
        return UNREADABLE
    return parse_message(raw, max_bytes=max_bytes).text_body


def message_view(m: Message) -> dict[str, Any]:
    return {
        "direction": m.direction,
        "kind": m.kind,
        "from": m.from_addr,
        "to": list(m.to_addrs),
        "message_id": m.message_id,
        "date": _iso(m.date or m.received_at),
        "received_at": _iso(m.received_at),
        "subject": opened(lambda: m.subject, UNREADABLE, m.case_id, f"message {m.id}'s subject"),
        "flags": list(m.flags),
        "attachments": opened(lambda: m.details.get("attachments", []), [], m.case_id,
                              f"message {m.id}'s details"),
    }


def subject_of(case: Case) -> str:
    """The case's subject, UNREADABLE when it does not open."""
    return opened(lambda: case.subject, UNREADABLE, case.id, "the subject")


def details_of(m: Message) -> dict[str, Any]:
    """A message's details (trust, PGP, attachments), or ``{}`` when they do not open."""
    return opened(lambda: m.details or {}, {}, m.case_id, f"message {m.id}'s details")


def event_view(e: Event) -> dict[str, Any]:
    return {"at": _iso(e.at), "actor": e.actor, "action": e.action,
            "detail": event_detail(e),
            "source": opened(lambda: e.source, UNREADABLE, e.case_id, f"event {e.id}'s source")}


def event_detail(e: Event) -> dict[str, Any]:
    """An event's detail, or ``{"detail": UNREADABLE}`` when it does not open."""
    return opened(lambda: e.detail, {"detail": UNREADABLE}, e.case_id, f"event {e.id}'s detail")


def unreadable_detail(detail: dict[str, Any]) -> bool:
    return detail == {"detail": UNREADABLE}


def list_cases(session: Session, *, status: str | None = None,
               where: ColumnElement[bool] | None = None) -> list[dict[str, Any]]:
    # Counted per listed case (an index lookup each), not grouped over the whole messages table
    # first: with 100,000 cases that grouping made `cases list --at-risk` take 0.3 s for a
    # screenful of rows.
    count = (select(func.count(Message.id)).where(Message.case_id == Case.id)
             .correlate(Case).scalar_subquery())
    stmt = select(Case, count).order_by(Case.received_at, Case.id)
    if status:
        stmt = stmt.where(Case.status == status)
    if where is not None:
        stmt = stmt.where(where)
    return [case_summary(case, n) for case, n in session.execute(stmt)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
