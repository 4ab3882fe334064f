"""Delete on demand: a case's content erased, its skeleton kept.

What goes: the raw bytes of every message (and a decrypted copy kept beside them), the subjects,
each message's details (attachment names among them), the outbox copies of mail about the case,
the name to credit and the details and sources of its events (command arguments, a credit name
among them).
What stays, so that deadline history and reports still count it: the case's id, reporter address,
dates, deadlines, status, severity, flags and credit consent, each message's routing metadata
(direction, kind, addresses, Message-ID, dates), and each event's time, actor and action. A
``purged`` event records who and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailbot.cases import service, vocabulary
from mailbot.cases.models import Case, Event, Message, Outbox, RawMessage
from mailbot.errors import UsageError
from mailbot.sealing import IntegrityFailure
from mailbot.store import Database

log = logging.getLogger("mailbot.retention")

PURGED = "purged"


@dataclass(frozen=True)
class Purged:
    case_id: str
    messages: int
    message_ids: list[tuple[str, str]]  # (folder, Message-ID) of what the mailbox may still hold


def purge_case(session: Session, case_id: str, actor: service.Actor, now: datetime) -> Purged:
    case = service.get_case(session, case_id, for_update=True)
    if case is None:
        raise UsageError(f"no case {case_id!r}; `mailbot cases list` shows the ids")
    messages = list(session.scalars(select(Message).where(Message.case_id == case.id)))
    raw_ids: set[int] = set()
    in_mailbox: list[tuple[str, str]] = []
    for m in messages:
        if m.raw_id is not None:
            raw_ids.add(m.raw_id)
        try:
            readable = m.details.get("readable_raw_id")
        except IntegrityFailure:  # a damaged value is erased like the rest
            readable = None
        if isinstance(readable, int):
            raw_ids.add(readable)
        if m.message_id:
            in_mailbox.append((m.folder, m.message_id))
        m.raw_id = None
        m.subject = ""
        m.details = {PURGED: True}
    for row in session.scalars(select(Outbox).where(Outbox.case_id == case.id)):
        row.data = b""
        if row.state == "queued":  # never sent now: there is nothing left to send
            row.state = "failed"
            row.last_error = "the case was purged before this was sent"
    session.flush()
    if raw_ids:
        session.execute(delete(RawMessage).where(RawMessage.id.in_(raw_ids)))
    for event in session.scalars(select(Event).where(Event.case_id == case.id)):
        event.detail = {PURGED: True}
        event.source = ""  # a command line carries its arguments
    case.subject = ""
    case.credit = None
    service.add_flags(case, PURGED)
    service.record(session, case, actor, PURGED,
                   {"messages": len(messages), "raw_messages": len(raw_ids)}, now)
    log.info("%s purged: %d messages, %d raw messages", case.id, len(messages), len(raw_ids))
    return Purged(case.id, len(messages), in_mailbox)


def purge(db: Database, case_id: str, actor: service.Actor, now: datetime) -> Purged:
    """Purge one case in a transaction of its own, then make sure the bytes are gone from disk."""
    with db.session() as session:
        result = purge_case(session, case_id, actor, now)
    forget_freed_pages(db)
    return result


def forget_freed_pages(db: Database) -> None:
    """SQLite keeps old page versions in its write-ahead log until a checkpoint: fold them into
    the file now (where ``secure_delete`` has zeroed what was freed) and empty the log."""
    if db.is_sqlite:
        # Outside a transaction (a checkpoint cannot run in one, and ours begin IMMEDIATE).
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        finally:
            raw.close()


def due_for_purge(session: Session, days: int, now: datetime) -> list[str]:
    """Closed more than ``days`` days before ``now``, and not purged yet."""
    cutoff = now - timedelta(days=days)
    rows = session.scalars(
        select(Case).where(Case.status == vocabulary.CLOSED, Case.closed_at < cutoff)
        .order_by(Case.closed_at, Case.id))
    return [c.id for c in rows if PURGED not in c.flags]


def apply_retention(db: Database, days: int, actor: service.Actor, now: datetime,
                    *, dry_run: bool = False) -> list[str]:
    """Purge what the retention policy says (``days`` = 0: nothing); the ids purged (or due)."""
    if days <= 0:
        return []
    with db.session() as session:
        due = due_for_purge(session, days, now)
    if dry_run:
        return due
    for case_id in due:
        with db.session() as session:
            purge_case(session, case_id, actor, now)
    if due:
        forget_freed_pages(db)
    return due

