"""Which case does a message belong to?

1. Its In-Reply-To or References name a Message-ID stored on a case (ours or theirs), or one of
   our own Message-IDs whose token verifies (so replies are recognised even without stored ids).
2. Else its subject carries a case tag ``[SEC-2026-0042]`` and the sender is already a
   participant of that case: the reporter, or a trusted team member.
3. Else it is a new report. A stranger's tag never attaches mail to someone else's case; the new
   case notes the tag it mentioned.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbot.cases.models import Case, Message
from mailbot.cases.service import case_tag_pattern
from mailbot.mail.compose import verify_message_id
from mailbot.mail.message import InboundMessage

MAX_IDS = 100  # parse keeps at most this many; a long or cyclic References costs one query


@dataclass(frozen=True)
class Correlation:
    case_id: str | None
    reason: str
    mentioned_tag: str = ""
    by_thread: bool = False  # found by In-Reply-To/References, not by a subject tag


def correlate(
    session: Session,
    msg: InboundMessage,
    *,
    trusted_team: bool,
    case_prefix: str,
    token_key: bytes,
) -> Correlation:
    by_thread = _by_thread_ids(session, msg, token_key)
    if by_thread is not None:
        return by_thread
    tags = case_tag_pattern(case_prefix).findall(msg.subject)
    sender = msg.sender.addr if msg.sender else ""
    for tag in tags:
        case = session.get(Case, tag)
        if case is None:
            continue
        if trusted_team:
            return Correlation(case.id, f"subject tag [{tag}] from a trusted team member")
        if sender and sender == case.reporter:
            return Correlation(case.id, f"subject tag [{tag}] from the case's reporter")
    if tags:
        return Correlation(None, f"subject tag [{tags[0]}] from a non-participant", tags[0])
    return Correlation(None, "no thread reference and no case tag")


# Built once: a statement built per message costs more than running it.
_HOLDERS = (select(Message.message_id, Message.case_id)
            .where(Message.message_id.in_(bindparam("ids", expanding=True)))
            .order_by(Message.id))


def _by_thread_ids(session: Session, msg: InboundMessage, token_key: bytes) -> Correlation | None:
    # In-Reply-To first (the message answered), then References from the newest back.
    ordered: list[str] = []
    for mid in (*msg.in_reply_to, *reversed(msg.references)):
        if mid and mid not in ordered:
            ordered.append(mid)
    ordered = ordered[:MAX_IDS]
    if not ordered:
        return None
    rows = session.execute(_HOLDERS, {"ids": ordered}).all()
    # A Message-ID someone else reused later must not capture the thread of its first holder.
    known: dict[str, str] = {}
    for mid, holder in rows:
        known.setdefault(mid, holder)
    for mid in ordered:
        if mid in known:
            return Correlation(known[mid], f"references {mid}", by_thread=True)
    if token_key:
        for mid in ordered:
            case_id = verify_message_id(mid, token_key)
            if case_id is not None and session.get(Case, case_id) is not None:
                return Correlation(case_id, f"references our message {mid} (token verified)",
                                   by_thread=True)
    return None
