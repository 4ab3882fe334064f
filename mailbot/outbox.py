"""The outbox: every outgoing message is a row written with the change that caused it, and a drain
that sends the rows over SMTP.

Delivery is at least once: a row is marked sent only after the server accepted it, so a crash in
between resends that one message once. Rows are claimed one at a time with ``FOR UPDATE SKIP
LOCKED`` so that several instances on PostgreSQL never send the same row together.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Message, Outbox
from mailbot.clock import Clock
from mailbot.errors import SmtpLoginRefused, SmtpPermanentError, SmtpTemporaryError
from mailbot.mail.addresses import sender_key
from mailbot.mail.smtp import Transport
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
    if any(o.message_id == mail.message_id for o in _pending_outbox(session)):
        return None
    with session.no_autoflush:  # what is unflushed is checked above; a flush here costs
        exists = session.scalar(_QUEUED_ID, {"message_id": mail.message_id})
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


# Built once (run for every receipt): a statement built per call costs more than running it.
_QUEUED_ID = select(Outbox.id).where(Outbox.message_id == bindparam("message_id"))
_RECEIPTS = select(func.count(Outbox.id)).where(
    Outbox.kind == "receipt", Outbox.created_at > bindparam("since"))
_RECEIPTS_TO = _RECEIPTS.where(Outbox.first_recipient == bindparam("key"))


def _pending_outbox(session: Session) -> list[Outbox]:
    """Outbox rows added in this session and not flushed yet (intake writes a batch at once)."""
    return [o for o in session.new if isinstance(o, Outbox)]


def receipts_sent_recently(session: Session, recipient: str, now: datetime) -> int:
    """Receipts queued in the last 24 hours for ``recipient``'s mailbox, whatever ``+tag`` or
    spelling it used (``sender_key``): the per-sender limit. Unflushed rows count too."""
    key, since = sender_key(recipient), now - timedelta(days=1)
    pending = sum(1 for o in _pending_outbox(session)
                  if o.kind == "receipt" and o.first_recipient == key and o.created_at > since)
    with session.no_autoflush:  # a flush would count the pending rows a second time
        stored = session.scalar(_RECEIPTS_TO, {"key": key, "since": since})
    return pending + (stored or 0)


def receipts_sent_within(session: Session, span: timedelta, now: datetime) -> int:
    """Receipts queued for anyone in the ``span`` before ``now``: the limit on all receipts.
    Unflushed rows count too."""
    since = now - span
    pending = sum(1 for o in _pending_outbox(session)
                  if o.kind == "receipt" and o.created_at > since)
    with session.no_autoflush:  # a flush would count the pending rows a second time
        stored = session.scalar(_RECEIPTS, {"since": since})
    return pending + (stored or 0)


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
    unrecorded: set[int] | None = None,
) -> DrainReport:
    """Send what is due over one SMTP connection. A connection-level failure ends the batch.

    ``unrecorded``: the ids of rows the SMTP server accepted but the database did not record as
    sent (it went away at that moment); kept by the caller from one drain to the next, they are
    recorded as sent first, never sent again by this process."""
    if unrecorded:
        _record_sent(db, unrecorded, clock.now())
    if not _anything_due(db, clock.now(), ignore_backoff):
        return DrainReport(waiting=_count_queued(db))
    with sending_lock(db) as ours:
        if not ours:
            log.info("another mailbot process is sending the outbox; leaving it to that one")
            return DrainReport(waiting=_count_queued(db))
        report = await _drain(db, transport, clock, on_failure, ignore_backoff, limit,
                              set() if unrecorded is None else unrecorded)
    report.waiting = _count_queued(db)
    return report


def _record_sent(db: Database, ids: set[int], now: datetime) -> None:
    with db.session() as session:
        for row in session.scalars(select(Outbox).where(Outbox.id.in_(ids))):
            if row.state == QUEUED:
                _mark_sent(row, now)
    log.info("recorded %d message(s) as sent that the SMTP server had accepted while the "
             "database was away", len(ids))
    ids.clear()


def _mark_sent(row: Outbox, now: datetime) -> None:
    row.state = SENT
    row.sent_at = now
    row.attempts += 1


async def _drain(
    db: Database, transport: Transport, clock: Clock, on_failure: AlertSink,
    ignore_backoff: bool, limit: int, unrecorded: set[int],
) -> DrainReport:
    report = DrainReport()
    tried = 0
    after = 0  # rows are claimed in id order; each is tried at most once per drain
    connection_lost: SmtpTemporaryError | None = None
    try:
        async with transport.connection() as smtp:
            while connection_lost is None and tried < limit:
                with _remembered_if_unrecorded(unrecorded) as accepted, db.session() as session:
                    row = _claim_next(session, clock.now(), ignore_backoff, after)
                    if row is None:
                        break
                    tried += 1
                    after = row.id
                    if db.is_sqlite:
                        # End the claim's transaction before the SMTP exchange: SQLite locks the
                        # whole file for a writer, and intake must not wait on a slow server. The
                        # sending lock keeps every other process away from this row meanwhile.
                        session.commit()
                    try:
                        await smtp.send(row.envelope_from, list(row.recipients), row.data)
                    except SmtpPermanentError as exc:
                        _fail(session, row, str(exc), clock.now(), on_failure)
                        report.failed += 1
                    except SmtpTemporaryError as exc:
                        if _postpone(session, row, str(exc), clock.now(), on_failure):
                            report.retried += 1
                        else:
                            report.failed += 1
                        if exc.code is None or exc.code == 421:
                            connection_lost = exc  # the connection is gone: end this batch
                    else:
                        accepted.append(row.id)
                        _mark_sent(row, clock.now())
                        report.sent += 1
                        log.info("sent %s %s for %s", row.kind, row.message_id,
                                 row.case_id or "no case")
    except SmtpLoginRefused:
        raise  # a person must fix the credentials: the caller says so, loudly and once
    except SmtpTemporaryError as exc:
        connection_lost = exc
    if connection_lost is not None:
        log.warning("SMTP unavailable, %d message(s) wait for the next try: %s",
                    _count_queued(db), connection_lost)
    return report


@contextmanager
def _remembered_if_unrecorded(unrecorded: set[int]) -> Iterator[list[int]]:
    """Yields a list for the row the server accepted. If the block then fails (the database
    went away before the row was recorded as sent), the row is remembered: it was delivered, and
    must not be sent again."""
    accepted: list[int] = []
    try:
        yield accepted
    except Exception:
        if accepted:
            unrecorded.update(accepted)
            log.warning("outbox row %d was sent but could not be recorded as sent; it will be "
                        "recorded before anything else is sent", accepted[0])
        raise


def _anything_due(db: Database, now: datetime, ignore_backoff: bool) -> bool:
    with db.session() as session:
        stmt = select(Outbox.id).where(Outbox.state == QUEUED)
        if not ignore_backoff:
            stmt = stmt.where(Outbox.next_attempt_at <= now)
        return session.scalar(stmt.limit(1)) is not None


def _count_queued(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Outbox.id)).where(Outbox.state == QUEUED)) or 0


def _claim_next(
    session: Session, now: datetime, ignore_backoff: bool, after: int
) -> Outbox | None:
    stmt = _CLAIM_ANY if ignore_backoff else _CLAIM_DUE
    return session.scalars(stmt, {"after": after, "now": now}).first()


# "id > the last one claimed" rather than "id NOT IN (every one tried)": that list grew with each
# row, so each claim was a new statement to compile, and a drain was quadratic. Built once.
_CLAIM_ANY = select(Outbox).where(Outbox.state == QUEUED, Outbox.id > bindparam("after")) \
    .order_by(Outbox.id).limit(1).with_for_update(skip_locked=True)
_CLAIM_DUE = _CLAIM_ANY.where(Outbox.next_attempt_at <= bindparam("now"))


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

