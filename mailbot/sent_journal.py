"""What the outbox drain has sent on SQLite and not yet marked sent in the database.

SQLite has one writer at a time, and intake holds that lock for a whole batch. A drain that
committed each accepted message at once would wait for every batch of intake in turn, one message
per batch. Instead, each acceptance is appended to a small journal file beside the database (one
``write``, before the next message is sent), and the rows are marked sent in the database one
chunk at a time, in the transaction that claims the next chunk. A crash in between loses nothing:
the next drain (which holds the same sending lock) marks what the journal lists before it sends
anything. So the outbox's promise stands: a crash can resend the one message whose acceptance it
interrupted, once.

Each line names the row's id and its Message-ID (unique): a journal left beside a database that
was replaced since marks nothing in the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from mailbot.cases.models import Outbox

log = logging.getLogger("mailbot.outbox")

SENT = "sent"
QUEUED = "queued"


@dataclass(frozen=True)
class Entry:
    row_id: int
    message_id: str
    sent_at: datetime


class SentJournal:
    """The journal file of one SQLite database; use only under ``store.sending_lock``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    @classmethod
    def beside(cls, database: str) -> SentJournal:
        db = Path(database).resolve()
        return cls(db.with_name(db.name + ".sent"))

    def record(self, row_id: int, message_id: str, sent_at: datetime) -> None:
        """The server accepted row ``row_id``: written through to the OS before the next send."""
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="ascii")  # noqa: SIM115 (kept open)
        self._handle.write(f"{row_id}\t{message_id}\t{sent_at.isoformat()}\n")
        self._handle.flush()

    def entries(self) -> list[Entry]:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) != 3:
                continue  # a line cut short by a crash: its message was not marked, it goes again
            try:
                out.append(Entry(int(parts[0]), parts[1], datetime.fromisoformat(parts[2])))
            except ValueError:
                continue
        return out

    def apply(self, session: Session, entries: list[Entry]) -> int:
        """Mark the listed rows sent (those still queued); in the caller's transaction."""
        if not entries:
            return 0
        table = cast(Table, Outbox.__table__)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("row_id"),
                   table.c.message_id == bindparam("mid"),
                   table.c.state == QUEUED)
            .values(state=SENT, sent_at=bindparam("at"), attempts=table.c.attempts + 1)
        )
        session.connection().execute(
            stmt, [{"row_id": e.row_id, "mid": e.message_id, "at": e.sent_at} for e in entries])
        return len(entries)

    def clear(self) -> None:
        """After the transaction that applied the entries committed."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
