"""What intake records of a message an ``Unwrapper`` opened (or could not open).

The message keeps the raw bytes that arrived; the readable version (decrypted) is kept beside it
through the same ``RawStore`` (so it is sealed at rest like the raw bytes), named in the
message's details as ``readable_raw_id``. A message that could not be decrypted flags its case
``undecryptable``, records why, and tells the team once.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases import service
from mailbot.cases.models import Case, Message, flagged
from mailbot.cases.service import Actor
from mailbot.clock import Clock
from mailbot.config import Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.oncall import people_to_tell
from mailbot.intake.unwrap import ENCRYPTED, UNDECRYPTABLE, Unwrapped
from mailbot.outbox import enqueue
from mailbot.outgoing import Writer, alert
from mailbot.store import RawStore

__all__ = ["ENCRYPTED", "UNDECRYPTABLE", "record", "still_undecryptable"]

log = logging.getLogger("mailbot.intake")


class Intake(Protocol):
    """The parts of ``mailbot.intake.pipeline.Intake`` used here."""

    @property
    def settings(self) -> Settings: ...
    @property
    def calendar(self) -> BusinessCalendar: ...
    @property
    def writer(self) -> Writer: ...
    @property
    def raw_store(self) -> RawStore: ...
    @property
    def clock(self) -> Clock: ...


def record(session: Session, case: Case, message: Message, opened: Unwrapped,
           intake: Intake) -> None:
    message.flags = [*message.flags, *(f for f in opened.flags if f not in message.flags)]
    details: dict[str, Any] = {**message.details, "pgp": dict(opened.details)}
    if opened.problem:
        details["pgp"]["problem"] = opened.problem
    if opened.decrypted and message.raw_id is not None:
        details["readable_raw_id"] = intake.raw_store.put(session, opened.raw)
    message.details = details
    if UNDECRYPTABLE in opened.flags:
        _undecryptable(session, case, message, opened.problem, intake)


def _undecryptable(session: Session, case: Case, message: Message, problem: str,
                   intake: Intake) -> None:
    service.add_flags(case, UNDECRYPTABLE)
    now = intake.clock.now()
    service.record(session, case, Actor("mailbot", "intake"), UNDECRYPTABLE,
                   {"reason": problem}, message.received_at)
    log.warning("%s: a message could not be decrypted: %s", case.id, problem)
    settings = intake.settings
    mail = alert(intake.writer, recipients=people_to_tell(settings, now, intake.calendar.tz),
                 case_id=case.id, what="An encrypted message could not be decrypted",
                 details={"case": case.id, "reason": problem,
                          "then": f"fix the key, then: mailbot cases retry-decrypt {case.id}"},
                 cause=f"undecryptable:{message.dedupe_key}", now=now)
    if mail is not None:
        enqueue(session, mail, now)


def still_undecryptable(session: Session, case: Case, but: Message) -> bool:
    """Another message of the case is still undecryptable."""
    flags = session.scalars(select(Message.flags).where(Message.case_id == case.id,
                                                        Message.id != but.id))
    return any(UNDECRYPTABLE in f for f in flags)


def undecryptable_cases(session: Session) -> list[str]:
    return list(session.scalars(select(Case.id).where(flagged(UNDECRYPTABLE))
                                .order_by(Case.id)))
