"""Reading the mailbox: fetch what is new, run each message through the pipeline, advance the
cursor in the same transaction.

A batch of messages is one transaction. It is first tried whole, the messages one after the
other with no savepoint between them, so that their rows are written together (one flush, one
INSERT per table, where nothing in between needs them in the database). If anything raises, that
transaction is rolled back and the batch is done again message by message, each inside its own
savepoint, so one message that raises rolls back alone: it is recorded as a failure, retried on
the next pass and quarantined (raw bytes kept, a person told) after three tries, while the rest
of the batch goes on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailbot.cases.models import InboundFailure, MailboxCursor
from mailbot.errors import DatabaseUnavailable
from mailbot.intake import history
from mailbot.intake.parse_pool import Ahead, ParsePool
from mailbot.intake.pipeline import Intake, Outcome, look_up_batch, process
from mailbot.intake.prepared import Prepared
from mailbot.mail.mailbox import Mailbox
from mailbot.mail.message import FetchedMessage
from mailbot.store import Database

log = logging.getLogger("mailbot.intake")

MAX_TRIES = 3

QuarantineAlert = Callable[[Session, FetchedMessage, str], None]


@dataclass
class PassReport:
    opened: int = 0
    added: int = 0
    duplicates: int = 0
    failed: int = 0
    quarantined: int = 0

    @property
    def processed(self) -> int:
        return self.opened + self.added + self.duplicates

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.OPENED:
            self.opened += 1
        elif outcome is Outcome.ADDED:
            self.added += 1
        else:
            self.duplicates += 1


class MailboxRunner:
    def __init__(self, db: Database, mailbox: Mailbox, intake: Intake,
                 on_quarantine: QuarantineAlert, batch_size: int = 100,
                 on_commit: Callable[[], None] | None = None,
                 parse_pool: ParsePool | None = None) -> None:
        self.db = db
        self.mailbox = mailbox
        self.intake = intake
        self.on_quarantine = on_quarantine
        self.batch_size = batch_size
        # Called after each batch that changed something has committed (the daemon starts the
        # outbox drain with it, so receipts go out while the rest of a backlog is read).
        self.on_commit = on_commit
        # Parses large batches ahead, in other processes (None: everything parsed here).
        self.parse_pool = parse_pool or ParsePool(0, intake.settings.policy.max_message_bytes)

    def run_pass(self) -> PassReport:
        """Everything new in every watched folder, then the retries of earlier failures."""
        report = PassReport()
        for folder in self.intake.settings.mailbox.folders:
            self._read_folder(folder, report)
        self.parse_pool.rest()
        return report

    def _read_folder(self, folder: str, report: PassReport) -> None:
        state = self.mailbox.folder_state(folder)
        if state is None:
            return
        with self.db.session() as session:
            cursor = session.get(MailboxCursor, folder)
            last_uid = cursor.last_uid if cursor else 0
            if cursor is not None and cursor.uidvalidity != state.uidvalidity:
                log.warning("%s: UIDVALIDITY changed from %d to %d; resyncing by dedupe key "
                            "(messages seen before change nothing)", folder,
                            cursor.uidvalidity, state.uidvalidity)
                last_uid = 0
                # Recorded at once: a resync cut short resumes where it got to, and a folder
                # that was emptied is not found "changed" again on every pass.
                cursor.uidvalidity, cursor.last_uid = state.uidvalidity, 0
            # Recorded before anything is processed, in this transaction: what the folder
            # holds now is history (unless configured to be answered).
            past = None if self.intake.settings.mailbox.answer_existing else \
                history.folder_history(session, folder, state, self.intake.clock.now(),
                                       first_sight=cursor is None)
            retry_uids = list(session.scalars(
                select(InboundFailure.uid).where(
                    InboundFailure.folder == folder,
                    InboundFailure.uidvalidity == state.uidvalidity,
                    InboundFailure.quarantined.is_(False),
                ).order_by(InboundFailure.uid)
            ))
        if retry_uids:
            self._process_batch(folder, state.uidvalidity, None,
                                history.mark(self.mailbox.fetch_uids(folder, retry_uids), past),
                                report)
        batches = self.mailbox.fetch_new(folder, last_uid, self.batch_size)
        for batch, prepared in self.parse_pool.ahead(batches):
            self._process_batch(folder, state.uidvalidity, max(m.uid for m in batch),
                                history.mark(batch, past), report, prepared)

    def _process_batch(
        self, folder: str, uidvalidity: int, advance_to: int | None,
        batch: Iterable[FetchedMessage], report: PassReport, prepared: Ahead | None = None,
    ) -> None:
        """One transaction: the batch whole, else each message in a savepoint; then the cursor.

        Retries of earlier failures (``advance_to`` None) go one by one straight away: they are
        the messages that raised before. ``prepared``: what the parse pool worked out for each
        message of the batch, in its order."""
        batch = list(batch)
        ahead: Ahead = prepared if prepared is not None else [None] * len(batch)
        before = report.opened + report.added + report.quarantined
        if not (advance_to is not None and len(batch) > 1 and
                self._process_together(folder, uidvalidity, advance_to, batch, ahead, report)):
            self._process_each(folder, uidvalidity, advance_to, batch, ahead, report)
        changed = report.opened + report.added + report.quarantined > before
        if changed and self.on_commit is not None:
            self.on_commit()

    def _process_each(
        self, folder: str, uidvalidity: int, advance_to: int | None,
        batch: list[FetchedMessage], ahead: Ahead, report: PassReport,
    ) -> None:
        """One transaction: each message in a savepoint, then the cursor."""
        with self.db.session() as session:
            _look_up(session, self.intake, ahead)
            for fetched, prepared in zip(batch, ahead, strict=True):
                outcome = process_alone(session, fetched, self.intake, prepared)
                if isinstance(outcome, Exception):
                    self._failed(session, fetched, outcome, report)
                else:
                    report.count(outcome)
                    if advance_to is None:  # a retry that worked
                        self._forget_failure(session, fetched)
            if advance_to is not None:
                _advance(session, folder, uidvalidity, advance_to, self.intake.clock.now())

    def _process_together(
        self, folder: str, uidvalidity: int, advance_to: int, batch: list[FetchedMessage],
        ahead: Ahead, report: PassReport,
    ) -> bool:
        """The batch in one go, no savepoint per message: True when it committed; False when
        something raised and the transaction was rolled back (nothing of it stays)."""
        outcomes: list[Outcome] = []
        try:
            with self.db.session() as session:
                _look_up(session, self.intake, ahead)
                for fetched, prepared in zip(batch, ahead, strict=True):
                    outcomes.append(process(session, fetched, self.intake, prepared))
                _advance(session, folder, uidvalidity, advance_to, self.intake.clock.now())
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise DatabaseUnavailable(f"database connection lost: {exc.orig}") from exc
            at = batch[len(outcomes)].uid if len(outcomes) < len(batch) else "commit"
            log.info("%s: a batch of %d failed whole (at uid %s: %s); once more message by "
                     "message", folder, len(batch), at, type(exc).__name__)
            return False
        for outcome in outcomes:
            report.count(outcome)
        return True

    def _failed(self, session: Session, fetched: FetchedMessage, exc: Exception,
                report: PassReport) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        row = session.scalars(select(InboundFailure).where(
            InboundFailure.folder == fetched.folder,
            InboundFailure.uidvalidity == fetched.uidvalidity,
            InboundFailure.uid == fetched.uid,
        )).first()
        now = self.intake.clock.now()
        if row is None:
            row = InboundFailure(folder=fetched.folder, uidvalidity=fetched.uidvalidity,
                                 uid=fetched.uid, attempts=0, updated_at=now)
            session.add(row)
        row.attempts += 1
        row.last_error = error
        row.updated_at = now
        log.error("%s uid %d failed (try %d of %d): %s", fetched.folder, fetched.uid,
                  row.attempts, MAX_TRIES, without_text(exc))
        if row.attempts >= MAX_TRIES:
            row.quarantined = True
            row.raw_id = self.intake.raw_store.put(session, fetched.raw)
            report.quarantined += 1
            log.error("%s uid %d quarantined after %d tries; its bytes are kept",
                      fetched.folder, fetched.uid, row.attempts)
            self.on_quarantine(session, fetched, error)
        else:
            report.failed += 1

    def _forget_failure(self, session: Session, fetched: FetchedMessage) -> None:
        row = session.scalars(select(InboundFailure).where(
            InboundFailure.folder == fetched.folder,
            InboundFailure.uidvalidity == fetched.uidvalidity,
            InboundFailure.uid == fetched.uid,
            InboundFailure.quarantined.is_(False),
        )).first()
        if row is not None:
            session.delete(row)


def process_alone(
    session: Session, fetched: FetchedMessage, intake: Intake, prepared: Prepared | None = None,
) -> Outcome | Exception:
    """``process`` in a savepoint of its own: a message that raises rolls back alone and its
    exception is returned, so that one bad message never stops the rest. Losing the database
    connection is no message's fault and stops the batch."""
    try:
        with session.begin_nested():
            return process(session, fetched, intake, prepared)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable(f"database connection lost: {exc.orig}") from exc
        return exc
    except Exception as exc:
        return exc


def without_text(exc: BaseException) -> str:
    """What failed and where (its type and the traceback's frames), without its message: that
    can quote the mail (a subject, a name), and mail stays out of logs. The whole text is kept,
    sealed, with the failure (``mailbot quarantine show``)."""
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    return f"{type(exc).__name__} (its text is kept with the failure)" + (
        f"\n{frames}" if frames else "")


def _look_up(session: Session, intake: Intake, ahead: Ahead) -> None:
    """A batch whose dedupe keys were worked out ahead is looked up in one query."""
    digests = [p.dedupe_key for p in ahead if p is not None]
    if digests:
        look_up_batch(session, intake, digests)


def _advance(session: Session, folder: str, uidvalidity: int, uid: int, now: datetime) -> None:
    cursor = session.get(MailboxCursor, folder)
    if cursor is None:
        session.add(MailboxCursor(folder=folder, uidvalidity=uidvalidity, last_uid=uid,
                                  updated_at=now))
        return
    if cursor.uidvalidity != uidvalidity:
        cursor.uidvalidity = uidvalidity
        cursor.last_uid = uid
    else:
        cursor.last_uid = max(cursor.last_uid, uid)
    cursor.updated_at = now
