"""What a pass over the mailbox would do, without doing it (``run --once --dry-run``, ``check``).

Only the arrival dates of the waiting messages are read (IMAP INTERNALDATE, never a body, never a
flag), and the database is only read: nothing is recorded, so a dry run before the first start
changes what the first start will do in no way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mailbot.cases.models import MailboxCursor
from mailbot.config import Settings
from mailbot.intake import history
from mailbot.mail.mailbox import Mailbox
from mailbot.store import Database, schema_version


@dataclass(frozen=True)
class FolderPreview:
    folder: str
    waiting: int
    imported: int  # there before mailbot first started: recorded, never answered
    too_old: int  # of the rest: older than receipt_max_age_hours, so no receipt
    is_inbox: bool

    def describe(self) -> str:
        if not self.waiting:
            return f"{self.folder}: no messages wait"
        fresh = self.waiting - self.imported
        parts = []
        if self.imported:
            parts.append(f"{self.imported} would be imported as history (no receipt, no "
                         "deadline)")
        if fresh and self.is_inbox:
            late = f" ({self.too_old} of them too old for a receipt: flagged for a person)" \
                if self.too_old else ""
            parts.append(f"{fresh} would be answered{late}")
        elif fresh:
            parts.append(f"{fresh} would be read as the team's replies")
        return f"{self.folder}: {self.waiting} message(s) wait: {'; '.join(parts)}"


def preview(
    db: Database, mailbox: Mailbox, settings: Settings, now: datetime
) -> list[FolderPreview]:
    """For each watched folder: how many messages wait, and what would happen to them."""
    found = []
    max_age = timedelta(hours=settings.policy.receipt_max_age_hours)
    fresh = _never_used(db)
    for folder in settings.mailbox.folders:
        state = mailbox.folder_state(folder)
        if state is None:
            continue
        cursor, past = None, None
        if fresh:
            past = history.FolderHistory(first_started=now, uidvalidity=state.uidvalidity,
                                         until_uid=max(state.uidnext - 1, 0))
        else:
            with db.session() as session:
                cursor = session.get(MailboxCursor, folder)
                past = history.folder_history(session, folder, state, now,
                                              first_sight=cursor is None, record=False)
        if settings.mailbox.answer_existing:
            past = None
        after = cursor.last_uid if cursor and cursor.uidvalidity == state.uidvalidity else 0
        arrivals = mailbox.arrival_dates(folder, after)
        old = {uid for uid, at in arrivals.items()
               if past is not None and past.includes(state.uidvalidity, uid, at)}
        too_old = sum(1 for uid, at in arrivals.items() if uid not in old and now - at > max_age)
        found.append(FolderPreview(folder=folder, waiting=len(arrivals), imported=len(old),
                                   too_old=too_old, is_inbox=folder == settings.mailbox.folder))
    return found


def _never_used(db: Database) -> bool:
    """No mailbot has run on this database yet (and looking must not create it)."""
    if db.is_sqlite:
        name = db.engine.url.database
        if not name or name == ":memory:" or not Path(name).exists():
            return True
    return schema_version(db) is None
