"""The ``SimilarReports`` the app hands to intake: an in-memory index of the open report cases.

The index is not stored: it is built from the database the first time intake asks (so a
command-line call that builds an ``App`` pays nothing, and neither does the import of
datasketch), from each open report case's report as it is stored, read through the database's
own unsealing, then kept current as intake goes:

- a new report case is added once it has been compared;
- a case that was closed (or marked a duplicate) since is dropped when a query hits it, after a
  look at its status in intake's transaction: closing a case never has to reach this index;
- an id whose case is gone (its transaction was rolled back) is dropped the same way.

Which cases are held: open (new, acknowledged, assessed), not a duplicate, and promised a
receipt, that is, a report: never imported history, automatic mail, our own mail or the team's.
A PGP-encrypted report is held by its decrypted text, which intake kept beside the raw bytes
(sealed like them); one that could not be decrypted has no text to compare and is left out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Message, flagged
from mailbot.cases.vocabulary import IMPORTED, OPEN_STATUSES
from mailbot.config import Settings
from mailbot.sealing import IntegrityFailure
from mailbot.similar import Candidate
from mailbot.store import Database, RawStore

if TYPE_CHECKING:
    from mailbot.duplicates.index import SignatureIndex

log = logging.getLogger("mailbot.duplicates")

ENCRYPTED = "encrypted"  # the message flag an unwrapper sets (mailbot.intake.unwrap)


class IndexedReports:
    """Open report cases like a new one (``mailbot.similar.SimilarReports``)."""

    def __init__(self, db: Database, *, threshold: float, max_bytes: int) -> None:
        self.db = db  # its raw store as it stands when the index is built (keys may rotate)
        self.threshold = threshold
        self.max_bytes = max_bytes
        self._index: SignatureIndex | None = None
        self._lock = threading.Lock()

    def similar(self, session: Session, case_id: str, subject: str, body: str
                ) -> list[Candidate]:
        from mailbot.duplicates.finder import MAX_CANDIDATES, most_similar
        from mailbot.duplicates.signature import signature

        with self._lock:
            index = self._ready(session, but=case_id)
            try:
                mine = signature(subject, body)
            except Exception:  # a text the normaliser chokes on is no report's duplicate
                log.exception("%s: no signature could be made of the report", case_id)
                return []
            if mine is None:
                return []
            found = []
            for other, similarity in most_similar(index, mine, self.threshold,
                                                  limit=MAX_CANDIDATES * 2):
                if not still_open_report(session, other):
                    index.remove(other)
                    continue
                found.append(Candidate(other, similarity))
                if len(found) == MAX_CANDIDATES:
                    break
            index.add(case_id, mine)
            return found

    def build(self, session: Session) -> int:
        """(Re)build the index from the database now; returns how many cases it holds."""
        with self._lock:
            self._index = None
            return len(self._ready(session, but=""))

    def _ready(self, session: Session, *, but: str) -> SignatureIndex:
        if self._index is None:
            from mailbot.duplicates.index import SignatureIndex
            from mailbot.duplicates.signature import signature

            index = SignatureIndex(self.threshold)
            for case_id, subject, body in stored_reports(session, self.db.raw_store,
                                                         self.max_bytes, but=but):
                held = signature(subject, body)
                if held is not None:
                    index.add(case_id, held)
            log.info("duplicate detection: %d open report case(s) indexed", len(index))
            self._index = index
        return self._index


def still_open_report(session: Session, case_id: str) -> bool:
    case = session.get(Case, case_id)
    return case is not None and case.status in OPEN_STATUSES and case.duplicate_of is None


def stored_reports(session: Session, raw_store: RawStore, max_bytes: int, *, but: str = ""
                   ) -> Iterator[tuple[str, str, str]]:
    """(case id, subject, body text) of each open report case's report, as intake read it."""
    from mailbot.mail.parse import parse_message

    stmt = (
        select(Message)
        .join(Case, Case.id == Message.case_id)
        .where(Case.status.in_(OPEN_STATUSES), Case.duplicate_of.is_(None),
               Case.ack_due.is_not(None), ~flagged(IMPORTED),
               Message.direction == "in", Message.kind == "report", Message.case_id != but)
        .order_by(Message.id)
    )
    for message in session.scalars(stmt):
        raw_id = _readable_raw_id(message)
        if raw_id is None:
            continue
        try:
            raw = raw_store.get(session, raw_id)
        except IntegrityFailure as exc:
            log.error("case %s: its report does not open, not indexed: %s", message.case_id, exc)
            continue
        msg = parse_message(raw, max_bytes=max_bytes)
        yield message.case_id, msg.subject, msg.text_body


def _readable_raw_id(message: Message) -> int | None:
    """The stored bytes intake read: the decrypted copy of an encrypted report (None when it
    could not be decrypted), else the bytes that arrived (None once purged)."""
    if ENCRYPTED not in message.flags:
        return message.raw_id
    try:
        details: dict[str, Any] = message.details
    except IntegrityFailure:
        return None
    readable = details.get("readable_raw_id")
    return readable if isinstance(readable, int) else None


def similar_reports(settings: Settings, db: Database) -> IndexedReports | None:
    """The app's duplicate detection; None when ``[policy] duplicate_similarity_percent`` is 0."""
    percent = settings.policy.duplicate_similarity_percent
    if percent == 0:
        return None
    return IndexedReports(db, threshold=percent / 100,
                          max_bytes=settings.policy.max_message_bytes)
