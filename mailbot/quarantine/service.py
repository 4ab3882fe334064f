"""List, show and retry quarantined messages (blocking; the CLI calls these)."""

from __future__ import annotations

import email.parser
import email.policy
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import InboundFailure, Message, RawMessage
from mailbot.cases.views import UNREADABLE
from mailbot.errors import UsageError
from mailbot.intake.pipeline import Intake, Outcome
from mailbot.intake.runner import process_alone, without_text
from mailbot.mail.message import FetchedMessage
from mailbot.mail.parse import dedupe_key
from mailbot.sealing import IntegrityFailure
from mailbot.store import Database

log = logging.getLogger("mailbot.quarantine")

# What `show` prints of the kept message: enough to recognise it, never its body.
SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")


@dataclass(frozen=True, kw_only=True)
class Quarantined:
    id: int
    folder: str
    uidvalidity: int
    uid: int
    tries: int
    error: str
    since: datetime
    size: int | None


@dataclass(frozen=True, kw_only=True)
class Detail:
    entry: Quarantined
    headers: list[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class RetryResult:
    outcome: str  # "opened" | "added" | "duplicate" | "failed"
    case_id: str | None
    error: str = ""


def list_quarantined(db: Database) -> list[Quarantined]:
    with db.session() as session:
        rows = session.scalars(select(InboundFailure).where(InboundFailure.quarantined.is_(True))
                               .order_by(InboundFailure.id))
        return [_entry(session, row) for row in rows]


def show(db: Database, intake: Intake, entry_id: int) -> Detail:
    with db.session() as session:
        row = _get(session, entry_id)
        raw = intake.raw_store.get(session, row.raw_id) if row.raw_id is not None else b""
        return Detail(entry=_entry(session, row), headers=_headers(raw))


def retry(db: Database, intake: Intake, entry_id: int) -> RetryResult:
    """Intake again from the kept bytes. Leaves the quarantine unless it fails again."""
    with db.session() as session:
        row = _get(session, entry_id)
        if row.raw_id is None:
            raise UsageError(f"quarantined message {entry_id} has no kept bytes to retry")
        raw = intake.raw_store.get(session, row.raw_id)
        # The arrival time is not kept with a failure; the quarantine's time is the closest.
        fetched = FetchedMessage(raw=raw, folder=row.folder, uidvalidity=row.uidvalidity,
                                 uid=row.uid, internal_date=row.updated_at)
        outcome = process_alone(session, fetched, intake)
        if isinstance(outcome, Exception):
            row.attempts += 1
            row.last_error = f"{type(outcome).__name__}: {outcome}"[:2000]
            log.error("quarantined message %d failed again: %s", entry_id,
                      without_text(outcome))
            return RetryResult(outcome="failed", case_id=None, error=row.last_error)
        raw_id = row.raw_id
        session.delete(row)
        session.flush()
        kept = session.get(RawMessage, raw_id)
        if kept is not None:  # the case keeps its own copy; the quarantine's goes
            session.delete(kept)
        case_id = _case_of(session, fetched, outcome, intake)
        log.info("quarantined message %d retried: %s %s", entry_id, outcome.value, case_id)
        return RetryResult(outcome=outcome.value, case_id=case_id)


def _get(session: Session, entry_id: int) -> InboundFailure:
    row = session.get(InboundFailure, entry_id)
    if row is None or not row.quarantined:
        raise UsageError(f"no quarantined message {entry_id}; `mailbot quarantine list` shows "
                         "the ids")
    return row


def _entry(session: Session, row: InboundFailure) -> Quarantined:
    size = None
    if row.raw_id is not None:
        size = session.scalar(select(RawMessage.size).where(RawMessage.id == row.raw_id))
    return Quarantined(id=row.id, folder=row.folder, uidvalidity=row.uidvalidity, uid=row.uid,
                       tries=row.attempts, error=_error(row), since=row.updated_at, size=size)


def _error(row: InboundFailure) -> str:
    """The failure's error text (sealed), or UNREADABLE when it does not open."""
    try:
        return row.last_error
    except IntegrityFailure as exc:
        log.error("quarantined message %d: its error text does not open: %s", row.id, exc)
        return UNREADABLE


def _case_of(session: Session, fetched: FetchedMessage, outcome: Outcome,
             intake: Intake) -> str | None:
    """The case the message is on now: just recorded, or recorded before (a duplicate)."""
    query = select(Message.case_id)
    if outcome is Outcome.DUPLICATE:
        # Stored keyed (encryption at rest): the keys the raw store would store it under.
        keys = intake.raw_store.index_keys(dedupe_key(fetched.raw))
        query = query.where(Message.dedupe_key.in_(keys))
    else:
        query = query.where(Message.direction == "in", Message.folder == fetched.folder,
                            Message.uid == fetched.uid)
    return session.scalar(query.order_by(Message.id.desc()).limit(1))


def _headers(raw: bytes) -> list[tuple[str, str]]:
    """A few header fields of the kept message, read leniently (it broke intake once)."""
    try:
        head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    except Exception:  # a message that defeats even the header parser: show nothing of it
        return []
    shown = []
    for name in SHOWN_HEADERS:
        value = head.get(name)
        if value is not None:
            text = " ".join(str(value).split())[:200]
            shown.append((name, text))
    return shown
