"""The outbox: every outgoing message is a row written with the change that caused it, and a drain
that sends the rows over SMTP.

Delivery is at least once: a row is marked sent only after the server accepted it, so a crash in
between resends that one message once. Rows are claimed one at a time with ``FOR UPDATE SKIP
LOCKED`` so that several instances on PostgreSQL never send the same row together.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailbot.cases.models import Message, Outbox
from mailbot.clock import Clock
from mailbot.errors import SmtpLoginRefused, SmtpPermanentError, SmtpTemporaryError
from mailbot.mail.addresses import sender_key
from mailbot.mail.smtp import Connection, Transport
from mailbot.sent_journal import SentJournal
from mailbot.store import Database, sending_lock

log = logging.getLogger("mailbot.outbox")

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
GIVE_UP_AFTER = timedelta(days=3)  # a 4xx that lasts this long is treated as permanent
MAX_BACKOFF = timedelta(minutes=15)


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    case_id: str | None
    kind: str  # receipt | reminder | escalation | digest | alert
    message_id: str
    envelope_from: str  # "" = null reverse path (receipts, RFC 3834)
    recipients: list[str]
    subject: str
    data: bytes


def enqueue(session: Session, mail: OutgoingMail, now: datetime) -> Outbox | None:
    """Queue ``mail`` and record it on its case; the same Message-ID twice is queued once."""
    exists = session.scalar(select(Outbox.id).where(Outbox.message_id == mail.message_id))
    if exists is not None:
        return None
    row = Outbox(
        case_id=mail.case_id,
        kind=mail.kind,
        message_id=mail.message_id,
        envelope_from=mail.envelope_from,
        recipients=list(mail.recipients),
        first_recipient=sender_key(mail.recipients[0]),
        data=mail.data,
        state=QUEUED,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    if mail.case_id is not None:
        session.add(Message(
            case_id=mail.case_id,
            direction="out",
            kind=mail.kind,
            dedupe_key=hashlib.sha256(b"out:" + mail.message_id.encode()).hexdigest(),
            message_id=mail.message_id,
            from_addr="",
            to_addrs=list(mail.recipients),
            subject=mail.subject,
            date=now,
            received_at=now,
        ))
    return row


def receipts_sent_recently(session: Session, recipient: str, now: datetime) -> int:
    """Receipts queued in the last 24 hours for ``recipient``'s mailbox, whatever ``+tag`` or
    spelling it used (``sender_key``): the per-sender limit."""
    return session.scalar(
        select(func.count(Outbox.id)).where(
            Outbox.kind == "receipt",
            Outbox.first_recipient == sender_key(recipient),
            Outbox.created_at > now - timedelta(days=1),
        )
    ) or 0


def receipts_sent_within(session: Session, span: timedelta, now: datetime) -> int:
    """Receipts queued for anyone in the ``span`` before ``now``: the limit on all receipts."""
    return session.scalar(
        select(func.count(Outbox.id)).where(
            Outbox.kind == "receipt", Outbox.created_at > now - span,
        )
    ) or 0


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0  # tried in this drain and postponed
    failed: int = 0
    waiting: int = 0  # queued after the drain, whether tried or not (the number to tell people)


AlertSink = Callable[[Session, Outbox, str], None]


async def drain(
    db: Database,
    transport: Transport,
    clock: Clock,
    *,
    on_failure: AlertSink,
    ignore_backoff: bool = False,
    limit: int = 500,
) -> DrainReport:
    """Send what is due over one SMTP connection. A connection-level failure ends the batch.

    The database work runs in worker threads: on SQLite a transaction waits for intake's batch to
    commit, and the event loop must not wait with it."""
    if not await asyncio.to_thread(_anything_due, db, clock.now(), ignore_backoff):
        return DrainReport(waiting=await asyncio.to_thread(_count_queued, db))
    with sending_lock(db) as ours:
        if not ours:
            log.info("another mailbot process is sending the outbox; leaving it to that one")
            return DrainReport(waiting=await asyncio.to_thread(_count_queued, db))
        report = await _drain(db, transport, clock, on_failure, ignore_backoff, limit)
    report.waiting = await asyncio.to_thread(_count_queued, db)
    return report


CHUNK = 100  # rows read per claim; SQLite marks the previous chunk sent in the same transaction


@dataclass(frozen=True)
class _Due:
    """A queued row as read for sending: plain values, no session attached."""

    id: int
    kind: str
    message_id: str
    case_id: str | None
    envelope_from: str
    recipients: list[str]
    data: bytes


async def _drain(
    db: Database, transport: Transport, clock: Clock, on_failure: AlertSink,
    ignore_backoff: bool, limit: int,
) -> DrainReport:
    report = DrainReport()
    journal = _journal(db)
    tried = 0
    after = 0  # rows are claimed in id order; each is tried at most once per drain
    connection_lost: SmtpTemporaryError | None = None
    try:
        if journal is not None:  # what a crashed drain sent and did not mark
            await asyncio.to_thread(_settle, db, journal)
        async with transport.connection() as smtp:
            while connection_lost is None and tried < limit:
                chunk = await _next_chunk(db, journal, clock.now(), ignore_backoff, after,
                                          min(CHUNK, limit - tried))
                if not chunk:
                    break
                for due in chunk:
                    tried += 1
                    after = due.id
                    if journal is None:
                        connection_lost = await _send_locked(db, smtp, due, clock, on_failure,
                                                             report)
                    else:
                        connection_lost = await _send_journaled(db, smtp, due, clock,
                                                                on_failure, report, journal)
                    if connection_lost is not None:
                        break
    except SmtpLoginRefused:
        raise  # a person must fix the credentials: the caller says so, loudly and once
    except SmtpTemporaryError as exc:
        connection_lost = exc
    finally:
        if journal is not None:
            await asyncio.to_thread(_settle, db, journal)
            journal.close()
    if connection_lost is not None:
        log.warning("SMTP unavailable, %d message(s) wait for the next try: %s",
                    await asyncio.to_thread(_count_queued, db), connection_lost)
    return report


def _journal(db: Database) -> SentJournal | None:
    """SQLite's sent journal (see mailbot.sent_journal); None where rows are locked instead."""
    database = db.engine.url.database if db.is_sqlite else None
    if not database or database == ":memory:":
        return None
    return SentJournal.beside(database)


def _settle(db: Database, journal: SentJournal) -> None:
    entries = journal.entries()
    if entries:
        with db.session() as session:
            journal.apply(session, entries)
    journal.clear()


async def _next_chunk(
    db: Database, journal: SentJournal | None, now: datetime, ignore_backoff: bool, after: int,
    size: int,
) -> list[_Due]:
    if journal is None:
        return _read_chunk(db, None, now, ignore_backoff, after, size)
    # In a thread: on SQLite this transaction may wait for intake's batch to commit.
    return await asyncio.to_thread(_read_chunk, db, journal, now, ignore_backoff, after, size)


def _read_chunk(
    db: Database, journal: SentJournal | None, now: datetime, ignore_backoff: bool, after: int,
    size: int,
) -> list[_Due]:
    """The next ``size`` due rows after ``after``; on SQLite, in the transaction that marks the
    rows the journal lists as sent."""
    entries = journal.entries() if journal is not None else []
    with db.session() as session:
        if journal is not None:
            journal.apply(session, entries)
        stmt = select(Outbox).where(Outbox.state == QUEUED, Outbox.id > after)
        if not ignore_backoff:
            stmt = stmt.where(Outbox.next_attempt_at <= now)
        rows = session.scalars(stmt.order_by(Outbox.id).limit(size)).all()
        chunk = [_Due(id=r.id, kind=r.kind, message_id=r.message_id, case_id=r.case_id,
                      envelope_from=r.envelope_from, recipients=list(r.recipients), data=r.data)
                 for r in rows]
    if journal is not None:
        journal.clear()
    return chunk


async def _send_journaled(
    db: Database, smtp: Connection, due: _Due, clock: Clock, on_failure: AlertSink,
    report: DrainReport, journal: SentJournal,
) -> SmtpTemporaryError | None:
    """SQLite: the sending lock keeps every other process away from the row; an acceptance is
    journaled at once and marked in the database with the next chunk."""
    try:
        await smtp.send(due.envelope_from, due.recipients, due.data)
    except (SmtpPermanentError, SmtpTemporaryError) as exc:
        return await asyncio.to_thread(_refused, db, due, exc, clock, on_failure, report)
    journal.record(due.id, due.message_id, clock.now())
    _sent(due, report)
    return None


async def _send_locked(
    db: Database, smtp: Connection, due: _Due, clock: Clock, on_failure: AlertSink,
    report: DrainReport,
) -> SmtpTemporaryError | None:
    """PostgreSQL: the row stays locked (``FOR UPDATE SKIP LOCKED``) while it is sent, and its
    outcome commits before the next row goes; a row another instance holds is left to it."""
    with db.session() as session:
        stmt = select(Outbox.id).where(Outbox.id == due.id, Outbox.state == QUEUED)
        locked = session.scalar(stmt.with_for_update(skip_locked=True))
        if locked is None:
            return None  # sent, or being sent, by another instance since the chunk was read
        try:
            await smtp.send(due.envelope_from, due.recipients, due.data)
        except (SmtpPermanentError, SmtpTemporaryError) as exc:
            return _refused_in(session, due, exc, clock, on_failure, report)
        session.execute(update(Outbox).where(Outbox.id == due.id).values(
            state=SENT, sent_at=clock.now(), attempts=Outbox.attempts + 1))
    _sent(due, report)
    return None


def _sent(due: _Due, report: DrainReport) -> None:
    report.sent += 1
    log.info("sent %s %s for %s", due.kind, due.message_id, due.case_id or "no case")


def _refused(
    db: Database, due: _Due, exc: SmtpPermanentError | SmtpTemporaryError, clock: Clock,
    on_failure: AlertSink, report: DrainReport,
) -> SmtpTemporaryError | None:
    with db.session() as session:
        return _refused_in(session, due, exc, clock, on_failure, report)


def _refused_in(
    session: Session, due: _Due, exc: SmtpPermanentError | SmtpTemporaryError, clock: Clock,
    on_failure: AlertSink, report: DrainReport,
) -> SmtpTemporaryError | None:
    """Record a refusal on the row; the error when it ended the connection."""
    row = session.get(Outbox, due.id)
    if row is None:
        return None
    if isinstance(exc, SmtpPermanentError):
        _fail(session, row, str(exc), clock.now(), on_failure)
        report.failed += 1
        return None
    if _postpone(session, row, str(exc), clock.now(), on_failure):
        report.retried += 1
    else:
        report.failed += 1
    if exc.code is None or exc.code == 421:
        return exc  # the connection is gone: end this batch
    return None


def _anything_due(db: Database, now: datetime, ignore_backoff: bool) -> bool:
    with db.session() as session:
        stmt = select(Outbox.id).where(Outbox.state == QUEUED)
        if not ignore_backoff:
            stmt = stmt.where(Outbox.next_attempt_at <= now)
        return session.scalar(stmt.limit(1)) is not None


def _count_queued(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Outbox.id)).where(Outbox.state == QUEUED)) or 0


def _postpone(
    session: Session, row: Outbox, error: str, now: datetime, on_failure: AlertSink
) -> bool:
    """Back off a 4xx; give up when it has lasted too long. True when it will be retried."""
    row.attempts += 1
    row.last_error = error[:2000]
    if now - row.created_at > GIVE_UP_AFTER:
        _fail(session, row, f"gave up after {row.attempts} tries: {error}", now, on_failure)
        return False
    delay = min(timedelta(seconds=30 * 2 ** min(row.attempts - 1, 10)), MAX_BACKOFF)
    row.next_attempt_at = now + delay
    log.warning("%s %s postponed %ss after try %d: %s", row.kind, row.message_id,
                int(delay.total_seconds()), row.attempts, error)
    return True


def _fail(
    session: Session, row: Outbox, error: str, now: datetime, on_failure: AlertSink
) -> None:
    row.state = FAILED
    row.attempts += 1
    row.last_error = error[:2000]
    log.error("%s %s for %s failed permanently: %s", row.kind, row.message_id, row.case_id, error)
    if row.kind != "alert":  # an alert about an alert could loop
        on_failure(session, row, error)

