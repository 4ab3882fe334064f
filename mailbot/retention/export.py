"""``mailbot cases export``: a whole case, decrypted, for another system.

mbox: every message as received (inbound: the bytes that reached the mailbox; outbound: what
mailbot sent), oldest first, in the mboxrd form that mutt and Thunderbird open. json: the case
record with its messages (each with ``subject``, ``text`` and the message as received, base64)
and its events.
"""

from __future__ import annotations

import base64
import mailbox
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Message, Outbox
from mailbot.cases.views import case_detail
from mailbot.store import RawStore


def message_bytes(session: Session, m: Message, raw_store: RawStore) -> bytes | None:
    """The message as received (inbound) or as sent (outbound); None once purged."""
    if m.raw_id is not None:
        return raw_store.get(session, m.raw_id)
    if m.direction == "out" and m.message_id:
        row = session.scalars(select(Outbox).where(Outbox.message_id == m.message_id)).first()
        return row.data if row is not None and row.data else None
    return None


def export_json(session: Session, case: Case, raw_store: RawStore,
                max_bytes: int) -> dict[str, Any]:
    detail = case_detail(session, case, raw_store, max_bytes)
    messages = list(session.scalars(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)))
    for view, m in zip(detail["messages"], messages, strict=True):
        data = message_bytes(session, m, raw_store)
        view["raw_base64"] = base64.b64encode(data).decode("ascii") if data else None
    return detail


def export_mbox(session: Session, case: Case, raw_store: RawStore, out: Path) -> int:
    """Write the case's messages to the mbox ``out`` (replaced whole); how many."""
    messages = list(session.scalars(
        select(Message).where(Message.case_id == case.id).order_by(Message.id)))
    fd, tmp = tempfile.mkstemp(prefix=".export-", dir=out.parent)
    os.close(fd)
    os.unlink(tmp)  # mailbox.mbox creates it
    box = mailbox.mbox(tmp, create=True)
    count = 0
    try:
        box.lock()
        for m in messages:
            data = message_bytes(session, m, raw_store)
            if data:
                box.add(mailbox.mboxMessage(data))
                count += 1
        box.flush()
        box.unlock()
    finally:
        box.close()
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)
    return count
