"""The database tables, as SQLAlchemy 2 models.

Times are stored as timezone-aware UTC (``UtcDateTime``), so that SQLite and PostgreSQL give back
the same values. The raw bytes of every message sit in ``raw_messages`` and are only ever read and
written through ``mailbot.store.RawStore``.

What a reporter wrote is *sealed* (``mailbot.sealing``): ``case.subject``, ``case.credit``,
``message.subject``, ``message.details`` (attachment names among them), ``event.detail`` and
``event.source`` (command arguments), ``outbox.data`` and ``inbound_failure.last_error`` read
and write as plain values, and are stored as ``<name>_stored`` bytes, encrypted when the
database's sealer encrypts. Nothing may filter on them in SQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    cast,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mailbot.sealing import BYTES, JSON_DICT, OPTIONAL_TEXT, TEXT, Sealed, SealedRow, install


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime in, an aware UTC datetime out, whatever the backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime, dict[str, Any]: JSON, list[str]: JSON}


install(Base)


class Case(SealedRow, Base):
    __tablename__ = "cases"
    # The deadline watch asks "cases in this status, not yet reminded this far, whose running
    # deadline falls in this range": one index per deadline answers that without reading the
    # cases it is done with, however many overdue cases it has already escalated.
    # ``cases list --at-risk/--overdue`` use the same indexes for (status, due).
    __table_args__ = (
        Index("ix_cases_watch_ack", "status", "reminder_rank", "ack_due"),
        Index("ix_cases_watch_assessment", "status", "reminder_rank", "assessment_due"),
        Index("ix_cases_watch_resolution", "status", "reminder_rank", "resolution_due"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    reporter: Mapped[str] = mapped_column(String(320), index=True)  # address, "" if unknown
    reporter_name: Mapped[str] = mapped_column(String(200), default="")
    subject_stored: Mapped[bytes] = mapped_column("subject", LargeBinary)
    subject = Sealed("subject_stored", TEXT)
    flags: Mapped[list[str]] = mapped_column(default=list)
    mentioned_tag: Mapped[str] = mapped_column(String(40), default="")
    received_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ack_due: Mapped[datetime | None] = mapped_column(index=True)
    acknowledged_at: Mapped[datetime | None]
    assessment_due: Mapped[datetime | None] = mapped_column(index=True)
    assessed_at: Mapped[datetime | None]
    severity: Mapped[str | None] = mapped_column(String(20))
    target_date: Mapped[date | None] = mapped_column(Date)
    resolution_due: Mapped[datetime | None] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(40))
    duplicate_of: Mapped[str | None] = mapped_column(String(40))
    cve: Mapped[list[str]] = mapped_column(default=list)
    # The name to credit, as the reporter (or the team) gave it; None: none recorded.
    credit_stored: Mapped[bytes | None] = mapped_column("credit", LargeBinary)
    credit = Sealed("credit_stored", OPTIONAL_TEXT)
    __sealed__ = (subject, credit)
    # What the reporter said about being credited: named | anonymous | unknown (vocabulary).
    credit_consent: Mapped[str] = mapped_column(String(20), default="unknown",
                                                server_default="unknown")
    # The agreed publication (embargo) date; the watch reminds before it and escalates on it.
    disclosure_date: Mapped[date | None] = mapped_column(Date, index=True)
    # When on-call is next reminded to update the reporter (the third clock, after assessment):
    # moved forward whenever the team mails the reporter, and by each reminder.
    update_due: Mapped[datetime | None] = mapped_column(index=True)
    # How far the deadline watch has got with this case (mailbot.deadlines.watch.reminder_rank):
    # 0 = no reminder yet; it only grows, in the transaction that adds a ``reminders`` row.
    reminder_rank: Mapped[int] = mapped_column(default=0, server_default="0")

    messages: Mapped[list[Message]] = relationship(
        back_populates="case", order_by="Message.id", lazy="raise_on_sql"
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="case", order_by="Event.id", lazy="raise_on_sql"
    )


def flagged(flag: str) -> ColumnElement[bool]:
    """Cases whose flags include ``flag``. Flags are a JSON list, matched on its text (the same on
    SQLite and PostgreSQL); flags are plain words, so the quoted word cannot match another."""
    return cast(Case.flags, String).like(f'%"{flag}"%')


class CaseCounter(Base):
    """The next case number per prefix and year; a row lock makes ids unique across instances."""

    __tablename__ = "case_counters"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class RawMessage(Base):
    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    size: Mapped[int]
    codec: Mapped[str] = mapped_column(String(20))  # how `data` is encoded, e.g. "zlib"
    data: Mapped[bytes] = mapped_column(LargeBinary)  # sealed (mailbot.sealing) by the RawStore


class Message(SealedRow, Base):
    """One message on a case, inbound (from the mailbox) or outbound (from the outbox)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    subject_stored: Mapped[bytes] = mapped_column("subject", LargeBinary)
    subject = Sealed("subject_stored", TEXT)
    date: Mapped[datetime | None]  # the Date header
    received_at: Mapped[datetime]  # INTERNALDATE for inbound, enqueue time for outbound
    folder: Mapped[str] = mapped_column(String(200), default="")
    uid: Mapped[int | None] = mapped_column(BigInteger)
    flags: Mapped[list[str]] = mapped_column(default=list)
    details_stored: Mapped[bytes] = mapped_column("details", LargeBinary)
    details = Sealed("details_stored", JSON_DICT)  # attachments, reasons
    __sealed__ = (subject, details)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))

    case: Mapped[Case] = relationship(back_populates="messages", lazy="raise_on_sql")


class Event(SealedRow, Base):
    """The audit trail: every transition, command and notable decision on a case."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))
    # A command's arguments (a /credit name among them), a refusal's reason: sealed.
    detail_stored: Mapped[bytes] = mapped_column("detail", LargeBinary)
    detail = Sealed("detail_stored", JSON_DICT)
    # "message:<Message-ID>", or the command line that made it ("cli:cases credit ID Name"):
    # sealed, as it carries the command's arguments.
    source_stored: Mapped[bytes] = mapped_column("source", LargeBinary)
    source = Sealed("source_stored", TEXT)
    __sealed__ = (detail, source)

    case: Mapped[Case] = relationship(back_populates="events", lazy="raise_on_sql")


class Outbox(SealedRow, Base):
    """A message waiting to be sent, written in the same transaction as its cause."""

    __tablename__ = "outbox"
    # The second index answers "receipts queued in the last hour" (policy.receipts_per_hour),
    # the third "receipts to this sender in the last day" (receipts_per_sender_per_day).
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),
                      Index("ix_outbox_kind_created", "kind", "created_at"),
                      Index("ix_outbox_recipient_kind_created", "first_recipient", "kind",
                            "created_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320))  # "" = null reverse path
    recipients: Mapped[list[str]] = mapped_column()
    # The first recipient as mailbot.mail.addresses.sender_key folds it (no +tag, ...): what the
    # per-sender receipt limit counts by. The address mail goes to is in ``recipients``.
    first_recipient: Mapped[str] = mapped_column(String(320))
    data_stored: Mapped[bytes] = mapped_column("data", LargeBinary)
    data = Sealed("data_stored", BYTES)
    __sealed__ = (data,)
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued|sent|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Reminder(Base):
    """One reminder per case, deadline and stage, ever: the unique constraint is the guarantee."""

    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("case_id", "deadline", "stage"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    deadline: Mapped[str] = mapped_column(String(20))  # ack | assessment | resolution
    stage: Mapped[str] = mapped_column(String(20))  # at-risk | overdue
    due: Mapped[datetime]
    sent_to: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]


class MailboxCursor(Base):
    __tablename__ = "mailbox_cursors"

    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class InboundFailure(SealedRow, Base):
    """A message that failed processing; quarantined after three tries."""

    __tablename__ = "inbound_failures"
    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)
    # An error text can quote the message (a header, a part): sealed.
    last_error_stored: Mapped[bytes] = mapped_column("last_error", LargeBinary)
    last_error = Sealed("last_error_stored", TEXT)
    __sealed__ = (last_error,)
    quarantined: Mapped[bool] = mapped_column(default=False)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))
    updated_at: Mapped[datetime]


class Meta(Base):
    """Small instance-wide values, such as the generated token key when none is configured."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AccessLog(Base):
    """Who looked at what in the case view, and every login: the web's audit trail."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(320))  # the user name, "" when unknown
    action: Mapped[str] = mapped_column(String(40))  # login, login-failed, case-view, ...
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    address: Mapped[str] = mapped_column(String(64), default="")  # the client's IP address
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
