"""The open report cases' reports, read back from the database to rebuild the index.

Each report is read through the database's own unsealing (``SealedRawStore``), in one query
with its case's status, and reduced to what a signature needs: the subject and the text of the
first text part. That light reading costs a tenth of intake's full parse (which also decides
attachments, the sender's own text and trust), and it is what makes a start over many open cases
affordable; for the plain-text mail most reports are, it reads the same words.

Which cases: open (new, acknowledged, assessed), not a duplicate, and promised a receipt, that
is, a report: never imported history, automatic mail, our own mail or the team's. A
PGP-encrypted report is read from its decrypted copy, which intake kept beside the raw bytes
(sealed like them); one that could not be decrypted has no text to compare and is left out.
"""

from __future__ import annotations

import email
import logging
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Message, RawMessage, flagged
from mailbot.cases.vocabulary import IMPORTED, OPEN_STATUSES
from mailbot.mail.defects import Defects
from mailbot.mail.html_text import html_to_text
from mailbot.sealing import IntegrityFailure
from mailbot.store import SealedRawStore

log = logging.getLogger("mailbot.duplicates")

ENCRYPTED = "encrypted"  # the message flag an unwrapper sets (mailbot.intake.unwrap)
MAX_PARTS = 50  # looked at for the first text part


def stored_reports(session: Session, raw_store: SealedRawStore, max_bytes: int, *,
                   but: str = "") -> Iterator[tuple[str, str, str]]:
    """(case id, subject, body text) of each open report case's report, except ``but``'s.
    A report over ``max_bytes`` is left out: intake did not read its text either."""
    stmt = (
        select(Message, RawMessage.codec, RawMessage.data)
        .join(Case, Case.id == Message.case_id)
        .outerjoin(RawMessage, RawMessage.id == Message.raw_id)
        .where(Case.status.in_(OPEN_STATUSES), Case.duplicate_of.is_(None),
               Case.ack_due.is_not(None), ~flagged(IMPORTED),
               Message.direction == "in", Message.kind == "report", Message.case_id != but)
        .order_by(Message.id)
    )
    for message, codec, data in session.execute(stmt).yield_per(500):
        try:
            raw = _report_bytes(session, raw_store, message, codec, data)
        except (IntegrityFailure, KeyError, ValueError) as exc:
            log.error("case %s: its report does not open, not indexed: %s", message.case_id, exc)
            continue
        if raw is not None and len(raw) <= max_bytes:
            yield (message.case_id, *report_text(raw))


def _report_bytes(session: Session, raw_store: SealedRawStore, message: Message,
                  codec: str | None, data: bytes | None) -> bytes | None:
    """The bytes intake read: the decrypted copy of an encrypted report (None when it could not
    be decrypted), else the bytes that arrived (None once purged)."""
    if ENCRYPTED in message.flags:
        details: dict[str, Any] = message.details
        readable = details.get("readable_raw_id")
        return raw_store.get(session, readable) if isinstance(readable, int) else None
    if message.raw_id is None or codec is None or data is None:
        return None
    return raw_store.open_row(message.raw_id, codec, data)


def report_text(raw: bytes) -> tuple[str, str]:
    """The subject and the first text part (HTML as text) of a message; never raises."""
    try:
        msg = email.message_from_bytes(raw)
        return _subject(msg), _first_text(msg)
    except Exception as exc:  # an unreadable stored report is simply not compared
        log.debug("a stored report could not be read (%s)", type(exc).__name__)
        return "", ""


def _subject(msg: EmailMessage) -> str:
    value = msg.get("subject", "")
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:
        return str(value)


def _first_text(msg: EmailMessage) -> str:
    for n, part in enumerate(msg.walk()):
        if n > MAX_PARTS:
            break
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:  # a charset Python does not know
            text = payload.decode("utf-8", "replace")
        return html_to_text(text, Defects()) if kind == "text/html" else text
    return ""
