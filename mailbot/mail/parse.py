"""Raw bytes -> an immutable InboundMessage, and the dedupe key. Pure; never raises.

One parse and one walk per message, cheapest safeguard first:

1. Over ``max_bytes``: only the header block is parsed (defect ``oversize``); the body is never
   looked at. The same when the header block itself is over its bounds.
2. A scan of the raw bytes estimates what the stdlib parser's boundary checks would cost
   (``tree.nesting_problem``); over budget, only the header block is parsed.
3. The stdlib parser (compat32, bounded parameters) builds the MIME tree, once. A
   RecursionError (thousands of nested message/rfc822 levels) leaves the header block only.
4. One walk of that tree (``mime.walk_parts``) yields the part types, the attachments, the text
   parts and the sender's own part; their text is decoded once (``charsets``).
5. Headers and addresses: our own code over the tree's raw values (``fields``), all capped.

Every step is wrapped: whatever happens, the caller gets an InboundMessage whose ``defects``
say what went wrong, and ``unparseable`` when no header field the sender wrote could be read
(none at all, or only the trace fields servers add on delivery, as on a binary file).
"""

from __future__ import annotations

import logging
from email.message import Message

from mailbot.mail import fields
from mailbot.mail.dedupe import dedupe_key as dedupe_key
from mailbot.mail.defects import Defects
from mailbot.mail.fields import MAX_HEADER_FIELDS as MAX_HEADER_FIELDS
from mailbot.mail.fields import MAX_REFERENCES as MAX_REFERENCES
from mailbot.mail.header_block import (
    MAX_HEADER_BLOCK,
    MAX_HEADER_LINES,
    bounded_header_end,
    mend_lone_crs,
)
from mailbot.mail.headers import header_text, message_id
from mailbot.mail.message import Address, InboundMessage

# The limits tests and callers know parse by are those of the MIME walk.
from mailbot.mail.mime import MAX_DEPTH as MAX_DEPTH
from mailbot.mail.mime import MAX_PARTS as MAX_PARTS
from mailbot.mail.mime import MAX_TEXT as MAX_TEXT
from mailbot.mail.mime import Walk, body_text, part_content_type, walk_parts
from mailbot.mail.owntext import own_text
from mailbot.mail.tree import nesting_problem, parse_header_block, parse_tree

log = logging.getLogger("mailbot.parse")


def parse_message(raw: bytes, *, max_bytes: int = 26_214_400) -> InboundMessage:
    """Everything intake needs to know about one message. Never raises."""
    defects = Defects()
    try:
        return _parse(mend_lone_crs(bytes(raw)), max_bytes, defects)
    except Exception as exc:  # the guards below should make this unreachable; be sure anyway
        log.warning("parse failed (%s); reading the header block only", type(exc).__name__)
        defects.add(f"parser failure ({type(exc).__name__})")
    try:
        return _header_only(bytes(raw), defects)
    except Exception as exc:
        defects.add(f"header block unreadable ({type(exc).__name__})")
        return _empty(len(raw), defects)


def header_block_sender(raw: bytes) -> Address | None:
    """The single unambiguous From of the header block, if any. Never raises; skips the body."""
    try:
        return _header_only(mend_lone_crs(bytes(raw)), Defects()).sender
    except Exception:
        return None


def _parse(raw: bytes, max_bytes: int, defects: Defects) -> InboundMessage:
    if len(raw) > max_bytes:
        defects.add("oversize")
        return _header_only(raw, defects)
    if bounded_header_end(raw)[1]:
        return _header_only(raw, defects)
    problem = nesting_problem(raw)
    if problem:
        defects.add(problem)
        return _header_only(raw, defects)
    try:
        tree = parse_tree(raw)
    except RecursionError:
        defects.add("MIME nesting too deep: body not parsed")
        return _header_only(raw, defects)
    walk = walk_parts(tree, defects)
    if fields.only_trace_fields(tree):
        # Not mail (a binary file, say): binary bodies are not text, and no one wrote it.
        text = "" if b"\x00" in raw[:65536] else body_text(walk, defects)
        return _build(len(raw), tree, text=text, walk=walk, defects=defects)
    own = _own_text(walk, defects)
    text = body_text(walk, defects)
    return _build(len(raw), tree, text=text, own=own, walk=walk, defects=defects)


def _own_text(walk: Walk, defects: Defects) -> str:
    try:
        return own_text(walk, defects)
    except Exception as exc:  # no text is the safe answer: nothing in it can be obeyed
        defects.add(f"own text unreadable ({type(exc).__name__})")
        return ""


def _header_only(raw: bytes, defects: Defects) -> InboundMessage:
    end, cut = bounded_header_end(raw)
    if cut:
        defects.add(
            f"header block over {MAX_HEADER_BLOCK} bytes or {MAX_HEADER_LINES} lines: "
            "the rest of the message not read"
        )
    tree = parse_header_block(raw[:end])
    walk = Walk(part_types=[part_content_type(tree)])
    return _build(len(raw), tree, text="", walk=walk, defects=defects)


def _build(
    raw_size: int, tree: Message, *, text: str, walk: Walk, defects: Defects, own: str = ""
) -> InboundMessage:
    read = fields.raw_fields(tree)
    from_count = len(fields.values(read, "from"))
    from_ = fields.addresses(read, "from", defects, strict=True)
    to = fields.addresses(read, "to", defects)
    cc = fields.addresses(read, "cc", defects)
    reply_to = fields.addresses(read, "reply-to", defects)
    if from_count > 1:
        defects.add(f"{from_count} From header fields")
    unparseable = fields.nothing_from_the_sender(read, defects)
    date, bad_date = fields.date(fields.first(read, "date"), defects)
    return InboundMessage(
        raw_size=raw_size,
        from_=from_,
        from_header_count=from_count,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=header_text(fields.first(read, "subject")),
        date=date,
        message_id=message_id(fields.first(read, "message-id")),
        in_reply_to=fields.ids(read, "in-reply-to"),
        references=fields.ids(read, "references"),
        headers=fields.header_map(read, defects),
        content_type=part_content_type(tree),
        text_body=text,
        own_text=own,
        bad_date=bad_date,
        repeated_fields=fields.repeated(read),
        attachments=tuple(walk.attachments),
        part_types=tuple(walk.part_types),
        defects=defects.as_tuple(),
        unparseable=unparseable,
    )


def _empty(raw_size: int, defects: Defects) -> InboundMessage:
    return InboundMessage(
        raw_size=raw_size,
        from_=(),
        from_header_count=0,
        to=(),
        cc=(),
        reply_to=(),
        subject="",
        date=None,
        message_id="",
        in_reply_to=(),
        references=(),
        defects=defects.as_tuple(),
        unparseable=True,
    )
