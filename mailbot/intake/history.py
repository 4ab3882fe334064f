"""Mail that was there before mailbot, and receipts that would come too late.

**History is imported, not answered.** The first time mailbot reads a folder (no cursor yet), it
writes down, before it processes anything, which UIDs the folder already holds and when mailbot
first started on this mailbox (``meta`` rows, so a restart in the middle of a long import goes on
with the same answer). A message is *history* when it was among those UIDs and reached the mailbox
(its INTERNALDATE) before that first start. History opens cases flagged ``imported``: no receipt,
no deadline, never a reminder; its threads stay whole, so a later reply joins its case.
``[mailbox] answer_existing = true`` turns this off.

``mailbot ingest`` follows the same rule: a file's message dated before that first start (or
before now, when mailbot has not started yet) is history too. A mailbox that mailbot read before
this rule existed has no record of either: it imports nothing.

**A receipt is never late.** Whatever the history rule says, a message that reached the mailbox
more than ``[policy] receipt_max_age_hours`` ago, or whose acknowledgement deadline has already
passed, gets no receipt: a receipt days late, promising a date already gone, is worse than none.
Its case is flagged ``receipt-withheld`` and the daily digest lists it, so a person answers.

Decisions here are pure functions of their inputs, except ``folder_history``, which reads and
writes the two ``meta`` rows in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, MailboxCursor, Meta
from mailbot.cases.vocabulary import IMPORTED
from mailbot.mail.mailbox import FolderState
from mailbot.mail.message import FetchedMessage

FIRST_STARTED = "mailbox_first_started"
_FOLDER_KEY = "history:"


@dataclass(frozen=True)
class FolderHistory:
    """What a folder held when mailbot first read it, and when mailbot first started."""

    first_started: datetime
    uidvalidity: int
    until_uid: int  # the folder's UIDNEXT - 1 at first sight

    def covers(self, fetched: FetchedMessage) -> bool:
        return self.includes(fetched.uidvalidity, fetched.uid, fetched.internal_date)

    def includes(self, uidvalidity: int, uid: int, arrived: datetime) -> bool:
        return uidvalidity == self.uidvalidity and uid <= self.until_uid and \
            arrived < self.first_started


def folder_history(
    session: Session, folder: str, state: FolderState, now: datetime, *, first_sight: bool,
    record: bool = True,
) -> FolderHistory | None:
    """The folder's history as recorded at first sight; recorded now when this is first sight
    (unless ``record`` is false: what it would be, for a dry run).

    None for a folder that mailbot read before this rule existed (it has a cursor, but no record).
    """
    row = session.get(Meta, (_FOLDER_KEY + folder)[:100])
    if row is None:
        if not first_sight:
            return None
        row = Meta(key=(_FOLDER_KEY + folder)[:100],
                   value=json.dumps({"uidvalidity": state.uidvalidity,
                                     "until_uid": max(state.uidnext - 1, 0)}))
        if record:
            session.add(row)
    recorded = json.loads(row.value)
    return FolderHistory(first_started=first_started(session, now, record=record),
                         uidvalidity=int(recorded["uidvalidity"]),
                         until_uid=int(recorded["until_uid"]))


def first_started(session: Session, now: datetime, *, record: bool = True) -> datetime:
    """When mailbot first started on this mailbox; ``now`` if this is that moment."""
    row = session.get(Meta, FIRST_STARTED)
    if row is None:
        row = Meta(key=FIRST_STARTED, value=now.isoformat())
        if record:
            session.add(row)
    return datetime.fromisoformat(row.value)


def recorded_first_start(session: Session) -> datetime | None:
    """When mailbot first started on this mailbox, or None if it has not yet."""
    row = session.get(Meta, FIRST_STARTED)
    return datetime.fromisoformat(row.value) if row is not None else None


def ingest_cutoff(session: Session, now: datetime) -> datetime | None:
    """What ``mailbot ingest`` counts as history: mail dated before the first start, or before now
    when mailbot has never read the mailbox. None (nothing is history) when it read the mailbox
    before first starts were recorded: when that was is unknown, and replayed mail is answered."""
    started = recorded_first_start(session)
    if started is not None:
        return started
    if session.scalar(select(MailboxCursor.folder).limit(1)) is not None:
        return None
    return now


def mark(batch: Sequence[FetchedMessage], history: FolderHistory | None) -> list[FetchedMessage]:
    """The batch, with each message of the folder's history marked as such."""
    if history is None:
        return list(batch)
    return [dataclasses.replace(m, history=True) if history.covers(m) else m for m in batch]


def receipt_too_late(
    received_at: datetime, ack_due: datetime | None, now: datetime, max_age_hours: int
) -> str | None:
    """Why a receipt for a message that reached the mailbox at ``received_at`` would come too
    late at ``now``, or None when it is in time."""
    age = now - received_at
    if age > timedelta(hours=max_age_hours):
        return (f"it reached the mailbox {age // timedelta(hours=1)} hours ago, more than "
                f"policy.receipt_max_age_hours ({max_age_hours})")
    if ack_due is not None and ack_due <= now:
        return "its acknowledgement deadline has already passed"
    return None


def keep_unarmed(case: Case) -> None:
    """An imported case runs no clock: undo what acknowledging it armed."""
    if IMPORTED in case.flags:
        case.ack_due = None
        case.assessment_due = None
