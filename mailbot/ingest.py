"""``mailbot ingest``: .eml and mbox files processed as if they had arrived (backfill, replay).

An ingested message goes through the same pipeline as one from the mailbox, so ingesting a file
twice, or ingesting mail the daemon has already read, changes nothing the second time.
"""

from __future__ import annotations

import dataclasses
import logging
import mailbox
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from mailbot.errors import UsageError
from mailbot.intake import history
from mailbot.intake.pipeline import Intake
from mailbot.intake.runner import process_alone
from mailbot.mail.message import FetchedMessage
from mailbot.store import Database

log = logging.getLogger("mailbot.ingest")

FOLDER = "(ingest)"


BATCH = 100


def ingest(
    db: Database, intake: Intake, messages: Iterable[FetchedMessage], each: Callable[[], None]
) -> dict[str, int]:
    """Run ``messages`` through the pipeline, 100 to a transaction; counts by outcome, with
    "failed" for messages that raised (logged; their files are still there to ingest again)."""
    counts: Counter[str] = Counter()
    batch: list[FetchedMessage] = []
    cutoff = _history_cutoff(db, intake)
    for fetched in messages:
        if cutoff is not None and fetched.internal_date < cutoff:
            fetched = dataclasses.replace(fetched, history=True)
        batch.append(fetched)
        if len(batch) == BATCH:
            _ingest_batch(db, intake, batch, counts, each)
            batch = []
    if batch:
        _ingest_batch(db, intake, batch, counts, each)
    return dict(counts)


def _history_cutoff(db: Database, intake: Intake) -> datetime | None:
    """Messages dated before this are history (mailbot.intake.history): imported, unanswered."""
    if intake.settings.mailbox.answer_existing:
        return None
    with db.session() as session:
        return history.ingest_cutoff(session, intake.clock.now())


def _ingest_batch(db: Database, intake: Intake, batch: list[FetchedMessage],
                  counts: Counter[str], each: Callable[[], None]) -> None:
    with db.session() as session:
        for fetched in batch:
            outcome = process_alone(session, fetched, intake)
            if isinstance(outcome, Exception):
                log.error("message %d of the input failed: %s", fetched.uid, outcome,
                          exc_info=outcome)
                counts["failed"] += 1
            else:
                counts[outcome.value] += 1
            each()


def is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def count_messages(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if is_mbox(path):
            box = mailbox.mbox(path, create=False)
            total += len(box)
            box.close()
        else:
            total += 1
    return total


def read_messages(paths: list[Path]) -> Iterator[FetchedMessage]:
    """Every message of every file, with the arrival time taken from its Date header (or the
    file's modification time when the header is missing or unreadable)."""
    uid = 0
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: not a readable file")
        if is_mbox(path):
            box = mailbox.mbox(path, create=False)
            try:
                for key in box.iterkeys():
                    uid += 1
                    raw = box.get_bytes(key)
                    yield _fetched(raw, uid, _mtime(path))
            finally:
                box.close()
        else:
            uid += 1
            yield _fetched(path.read_bytes(), uid, _mtime(path))


def _fetched(raw: bytes, uid: int, fallback: datetime) -> FetchedMessage:
    return FetchedMessage(raw=raw, folder=FOLDER, uidvalidity=0, uid=uid,
                          internal_date=_date_header(raw) or fallback)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(os.stat(path).st_mtime, UTC)


def _date_header(raw: bytes) -> datetime | None:
    head = raw[:65536].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line[:5].lower() == b"date:":
            try:
                when = parsedate_to_datetime(line[5:].decode("ascii", "replace").strip())
            except (TypeError, ValueError, IndexError):
                return None
            if when is None or when.tzinfo is None:
                return None
            return when.astimezone(UTC)
    return None
