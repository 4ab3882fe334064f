"""The ``SimilarReports`` the app hands to intake: an in-memory index of the open report cases.

The index is not stored: it is built from the database when the app first reads the mailbox
after a start (``warm_up``), or else the first time intake asks (so a command-line call that
builds an ``App`` pays nothing, and neither does the import of datasketch), from each open
report case's report as it is stored (``stored``), then kept current as intake goes:

- a new report case is added once it has been compared;
- a case that was closed (or marked a duplicate) since is dropped when a query hits it, after a
  look at its status in intake's transaction: closing a case never has to reach this index;
- an id whose case is gone (its transaction was rolled back) is dropped the same way.

Which cases are held, and how an encrypted report is read: see ``stored``.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case
from mailbot.cases.vocabulary import OPEN_STATUSES
from mailbot.config import Settings
from mailbot.duplicates.stored import stored_reports
from mailbot.similar import Candidate
from mailbot.store import Database

if TYPE_CHECKING:
    from mailbot.duplicates.index import SignatureIndex

log = logging.getLogger("mailbot.duplicates")


class IndexedReports:
    """Open report cases like a new one (``mailbot.similar.SimilarReports``)."""

    def __init__(self, db: Database, *, threshold: float, max_bytes: int) -> None:
        self.db = db  # its raw store as it stands when the index is built (keys may rotate)
        self.threshold = threshold
        self.max_bytes = max_bytes
        self._index: SignatureIndex | None = None
        self._lock = threading.Lock()

    @property
    def signer(self) -> Callable[[str, str], object]:
        from mailbot.duplicates.signature import signature

        return signature

    def similar(self, session: Session, case_id: str, subject: str, body: str,
                signed: tuple[object] | None = None) -> list[Candidate]:
        from datasketch import MinHash

        from mailbot.duplicates.finder import MAX_CANDIDATES, most_similar
        from mailbot.duplicates.signature import signature

        with self._lock:
            index = self._ready(session, but=case_id)
            # Held under this id already: a report of a transaction rolled back since (intake
            # retries a batch message by message), never this report's own duplicate.
            index.remove(case_id)
            if signed is not None and (signed[0] is None or isinstance(signed[0], MinHash)):
                mine = signed[0]  # worked out ahead, in a parse process
            else:
                try:
                    mine = signature(subject, body)
                except Exception:  # a text the normaliser chokes on is no report's duplicate
                    log.exception("%s: no signature could be made of the report", case_id)
                    return []
            if mine is None:
                return []
            ranked = most_similar(index, mine, self.threshold, limit=MAX_CANDIDATES * 2)
            still_open = open_report_cases(session, [other for other, _ in ranked])
            found: list[Candidate] = []
            for other, similarity in ranked:
                if other not in still_open:
                    index.remove(other)
                elif len(found) < MAX_CANDIDATES:
                    found.append(Candidate(other, similarity))
            index.add(case_id, mine)
            return found

    def warm_up(self) -> None:
        """Build the index now, in a session of its own, unless it is built: the app calls this
        before its first pass over the mailbox, so that the first new report after a start does
        not wait for the build inside intake's transaction (holding SQLite's write lock)."""
        with self._lock:
            if self._index is None:
                with self.db.session() as session:
                    self._ready(session, but="")

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
            # Tens of thousands of long-lived objects at once: the cyclic collector would scan
            # them over and over as they pile up (it doubled the build's time at 10,000 cases).
            collecting = gc.isenabled()
            gc.disable()
            try:
                for case_id, subject, body in stored_reports(session, self.db.raw_store,
                                                             self.max_bytes, but=but):
                    held = signature(subject, body)
                    if held is not None:
                        index.add(case_id, held)
            finally:
                if collecting:
                    gc.enable()
            log.info("duplicate detection: %d open report case(s) indexed", len(index))
            self._index = index
        return self._index


_OPEN_REPORTS = select(Case.id).where(Case.id.in_(bindparam("ids", expanding=True)),
                                     Case.status.in_(OPEN_STATUSES), Case.duplicate_of.is_(None))


def open_report_cases(session: Session, case_ids: list[str]) -> set[str]:
    """Those of ``case_ids`` whose case is (still) open and no duplicate, in one query.

    Without flushing: intake writes a batch's rows together (a flush here, once per report,
    would undo that). The cases the session holds unwritten, new in this batch or changed by
    it, are judged as they are in memory."""
    if not case_ids:
        return set()
    with session.no_autoflush:
        found = set(session.scalars(_OPEN_REPORTS, {"ids": case_ids}))
    wanted = set(case_ids)
    for held in (*session.new, *session.dirty):
        if isinstance(held, Case) and held.id in wanted:
            if held.status in OPEN_STATUSES and held.duplicate_of is None:
                found.add(held.id)
            else:
                found.discard(held.id)
    return found


def similar_reports(settings: Settings, db: Database) -> IndexedReports | None:
    """The app's duplicate detection; None when ``[policy] duplicate_similarity_percent`` is 0."""
    percent = settings.policy.duplicate_similarity_percent
    if percent == 0:
        return None
    return IndexedReports(db, threshold=percent / 100,
                          max_bytes=settings.policy.max_message_bytes)
