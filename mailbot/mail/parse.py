"""Raw bytes -> an immutable InboundMessage, and the dedupe key. Pure; never raises.

How a message is read, cheapest safeguard first:

1. Over ``max_bytes``: only the header block is parsed (defect ``oversize``); the body is never
   looked at.
2. A scan of the raw bytes bounds what the parsers would do. The stdlib feed parser checks every
   line against every enclosing multipart boundary, so nesting depth x lines is its cost; when
   that estimate is over budget only the header block is parsed.
3. The stdlib parser (compat32, fed in chunks) builds the MIME tree. Content-Type and
   Content-Disposition values are bounded as they are stored, because the stdlib's parameter
   parser is quadratic in the number of ``;``. A RecursionError (thousands of nested
   message/rfc822 levels) leaves the header block only.
4. mail-parser reads the text of that tree. It is skipped for shapes it is slow on (huge or very
   many header fields, thousands of parts). When it raises, the stdlib parser takes over
   (policy.default, then the compat32 tree) with our own text extraction.
5. Headers, addresses, attachments: our own code over the tree's raw values, everything capped.

Every step is wrapped: whatever happens, the caller gets an InboundMessage whose ``defects``
say what went wrong, and ``unparseable`` when no header field the sender wrote could be read
(none at all, or only the trace fields servers add on delivery, as on a binary file).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors, policy
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy
from email.utils import parsedate_to_datetime
from typing import Any

import mailparser

from mailbot.mail.addresses import all_addresses
from mailbot.mail.dedupe import dedupe_key as dedupe_key
from mailbot.mail.dedupe import is_trace_name
from mailbot.mail.header_block import MAX_HEADER_BLOCK as MAX_HEADER_BLOCK
from mailbot.mail.header_block import MAX_HEADER_LINES as MAX_HEADER_LINES
from mailbot.mail.header_block import bounded_header_end, header_end, mend_lone_crs
from mailbot.mail.headers import (
    MAX_HEADER_VALUE,
    clean,
    header_text,
    message_id,
    message_ids,
)
from mailbot.mail.message import Address, InboundMessage

# The limits tests and callers know parse by are those of the MIME walk.
from mailbot.mail.mime import MAX_DEPTH as MAX_DEPTH
from mailbot.mail.mime import MAX_PARTS as MAX_PARTS
from mailbot.mail.mime import MAX_TEXT as MAX_TEXT
from mailbot.mail.mime import (
    Defects,
    Walk,
    assemble,
    body_text,
    part_content_type,
    walk_parts,
)
from mailbot.mail.owntext import own_text

log = logging.getLogger("mailbot.parse")
# mail-parser logs a warning for every part type it does not handle, and errors for broken
# epilogues; our defects already say so, and its log lines would repeat reporter input.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MAX_HEADER_FIELDS = 1000  # header fields kept in InboundMessage.headers
MAX_REFERENCES = 100  # ids kept of References and of In-Reply-To (the last ones)
MAX_ADDRESS_FIELDS = 3  # fields of one address header (From, To, ...) parsed; all counted
# Content-Type / Content-Disposition: longer values, or more parameters, are cut when stored.
MAX_PARAM_FIELD = 8 * 1024
MAX_PARAMS = 64
# The feed parser's boundary checks: estimated nesting depth x lines it may cost.
NESTING_BUDGET = 10_000_000
MAX_BOUNDARY_DECLARATIONS = 64  # more, and their nesting is not worked out: assumed deep
MAX_BOUNDARY_MENTIONS = 10_000
# Shapes that make mail-parser slow (it parses every address and Received field it sees).
MAILPARSER_MAX_HEADER_BLOCK = 256 * 1024
MAILPARSER_MAX_FIELD = 32 * 1024
MAILPARSER_MAX_FIELDS = 500
MAILPARSER_MAX_DELIMITERS = 2000
MAILPARSER_MAX_BYTES = 4 * 1024 * 1024  # it keeps a base64 copy of every attachment

# Dates outside this range are not believed: none can be true of mail, and the far ones do not
# survive time zone arithmetic or storage.
DATE_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
# Fields a message has at most once (RFC 5322 3.6). Mail that repeats one is ambiguous about
# who sent it or what it answers, and is never taken as the team's.
SINGLE_FIELDS = frozenset(
    {"from", "sender", "reply-to", "to", "subject", "date", "message-id", "in-reply-to",
     "references"}
)

_CHUNK = 64 * 1024
_PARAM_FIELDS = frozenset({"content-type", "content-disposition"})
BODY_JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]+")
_TAG = re.compile(r"<[^>]*>")
_BOUNDARY_PARAM = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')


# ---------------------------------------------------------------------------------------------
# Public API


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


# ---------------------------------------------------------------------------------------------
# The trip through the parsers


def _parse(raw: bytes, max_bytes: int, defects: Defects) -> InboundMessage:
    if len(raw) > max_bytes:
        defects.add("oversize")
        return _header_only(raw, defects)
    shape = _Shape.of(raw)
    if shape.header_block_cut:
        return _header_only(raw, defects)
    if shape.depth * shape.lines > NESTING_BUDGET:
        defects.add(
            f"multipart nesting too deep for its size (estimated {shape.depth} levels over "
            f"{shape.lines} lines): body not parsed"
        )
        return _header_only(raw, defects)
    try:
        tree = _parse_tree(raw, policy.compat32)
    except RecursionError:
        defects.add("MIME nesting too deep: body not parsed")
        return _header_only(raw, defects)
    walk = walk_parts(tree, defects)
    if _only_trace_fields(tree):
        # Not mail (a binary file, say): binary bodies are not text, and mail-parser has
        # nothing to add.
        text = "" if b"\x00" in raw[:65536] else body_text(walk, defects)
        return _build(len(raw), tree, text=text, walk=walk, defects=defects)
    # Whichever parser reads the text below, the sender's own text is decided here, once.
    own = _own_text(tree, defects)
    skip = shape.mailparser_unsuitable()
    if skip:
        defects.add(f"mail-parser skipped ({skip})")
        text = body_text(walk, defects)
    else:
        read = _text_with_mailparser(tree, defects)
        text = read if read is not None else _text_with_stdlib(raw, walk, defects)
    return _build(len(raw), tree, text=text, own=own, walk=walk, defects=defects)


def _own_text(tree: Message, defects: Defects) -> str:
    try:
        return own_text(tree, defects)
    except Exception as exc:  # no text is the safe answer: nothing in it can be obeyed
        defects.add(f"own text unreadable ({type(exc).__name__})")
        return ""


def _text_with_mailparser(tree: Message, defects: Defects) -> str | None:
    """The body text as mail-parser reads it; None when it fails."""
    try:
        mp = mailparser.MailParser(tree)
        plain = [str(t) for t in mp.text_plain]
        html = [str(t) for t in mp.text_html]
        other = [str(t) for t in mp.text_not_managed]
    except Exception as exc:
        defects.add(f"mail-parser failed ({type(exc).__name__})")
        return None
    return assemble(plain, html, other, defects)


def _text_with_stdlib(raw: bytes, compat_walk: Walk, defects: Defects) -> str:
    """policy.default first (it reads some broken structures better), then the compat32 tree."""
    try:
        walk = walk_parts(_parse_tree(raw, policy.default), Defects())
        defects.add("read with the standard library (policy.default)")
    except Exception as exc:
        defects.add(f"policy.default failed ({type(exc).__name__}); read with compat32")
        walk = compat_walk
    return body_text(walk, defects)


def _parse_tree(raw: bytes, pol: Policy[Any]) -> Message:
    # Chunks, not BytesParser: that one makes a StringIO copy of the whole message.
    parser: BytesFeedParser[Message] = BytesFeedParser(_BoundedMessage, policy=pol)
    view = memoryview(raw)
    for start in range(0, len(raw), _CHUNK):
        parser.feed(bytes(view[start : start + _CHUNK]))
    return parser.close()


def _header_only(raw: bytes, defects: Defects) -> InboundMessage:
    end, cut = bounded_header_end(raw)
    if cut:
        defects.add(
            f"header block over {MAX_HEADER_BLOCK} bytes or {MAX_HEADER_LINES} lines: "
            "the rest of the message not read"
        )
    parser = BytesParser(_BoundedMessage, policy=policy.compat32)
    tree = parser.parsebytes(raw[:end], headersonly=True)
    walk = Walk(part_types=[part_content_type(tree)])
    return _build(len(raw), tree, text="", walk=walk, defects=defects)


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


class _ParametersTruncatedDefect(errors.HeaderDefect):
    """A Content-Type or Content-Disposition was too long or had too many parameters."""


class _BoundedMessage(Message):
    """A stdlib Message that cuts Content-Type and Content-Disposition values as they are stored.

    The stdlib re-parses these on every get_param()/get_filename()/get_content_charset(), in time
    quadratic in the number of ``;``; mail-parser calls those for every part.
    """

    def set_raw(self, name: str, value: Any) -> None:
        if isinstance(value, str) and name.lower() in _PARAM_FIELDS and _too_many_params(value):
            value = _bound_params(value)
            self.defects.append(_ParametersTruncatedDefect())
        super().set_raw(name, value)


def _too_many_params(value: str) -> bool:
    return len(value) > MAX_PARAM_FIELD or value.count(";") > MAX_PARAMS


def _bound_params(value: str) -> str:
    value = value[:MAX_PARAM_FIELD]
    pos = -1
    for _ in range(MAX_PARAMS):
        pos = value.find(";", pos + 1)
        if pos == -1:
            return value
    return value[:pos]


# ---------------------------------------------------------------------------------------------
# The shape of the raw bytes, before any parser sees them


@dataclass(frozen=True)
class _Shape:
    size: int
    header_block: int  # bytes
    header_block_cut: bool  # over MAX_HEADER_BLOCK or MAX_HEADER_LINES
    fields: int  # header fields in the top-level block
    longest_field: int  # bytes
    delimiters: int  # lines starting with "--"
    lines: int
    depth: int  # upper estimate of multipart nesting

    @classmethod
    def of(cls, raw: bytes) -> _Shape:
        end = header_end(raw)
        _, cut = bounded_header_end(raw)
        fields, longest = _field_stats(raw, min(end, MAILPARSER_MAX_HEADER_BLOCK + 1))
        lines = max(raw.count(b"\n"), raw.count(b"\r"))
        return cls(
            size=len(raw),
            header_block=end,
            header_block_cut=cut,
            fields=fields,
            longest_field=longest,
            delimiters=raw.count(b"\n--") + raw.count(b"\r--"),
            lines=lines,
            depth=_nesting_depth(raw, lines),
        )

    def mailparser_unsuitable(self) -> str:
        """Why mail-parser would be too slow or too big on this message, or ""."""
        if self.size > MAILPARSER_MAX_BYTES:
            return f"{self.size} bytes"
        if self.header_block > MAILPARSER_MAX_HEADER_BLOCK:
            return f"header block of {self.header_block} bytes"
        if self.fields > MAILPARSER_MAX_FIELDS:
            return f"{self.fields} header fields"
        if self.longest_field > MAILPARSER_MAX_FIELD:
            return f"a header field of {self.longest_field} bytes"
        if self.delimiters > MAILPARSER_MAX_DELIMITERS:
            return f"{self.delimiters} MIME delimiter lines"
        return ""


def _field_stats(raw: bytes, end: int) -> tuple[int, int]:
    """How many header fields the first ``end`` bytes hold, and the longest one."""
    fields = longest = current = 0
    for line in raw[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            current += len(line)
        else:
            fields += 1
            current = len(line)
        longest = max(longest, current)
    return fields, longest


def _nesting_depth(raw: bytes, lines: int) -> int:
    """An upper estimate of how deep multiparts nest: boundaries declared and not yet closed."""
    lowered = raw.lower()
    mentions = lowered.count(b"boundary")
    if mentions * lines <= NESTING_BUDGET or mentions > MAX_BOUNDARY_MENTIONS:
        return mentions  # cheap enough whatever the nesting, or too many to look at
    declared: list[re.Match[bytes]] = []
    pos = lowered.find(b"boundary")
    while pos != -1:
        m = _BOUNDARY_PARAM.match(lowered, pos)
        if m:
            declared.append(m)
        pos = lowered.find(b"boundary", pos + 8)
    if len(declared) * lines <= NESTING_BUDGET or len(declared) > MAX_BOUNDARY_DECLARATIONS:
        return len(declared)
    events: list[tuple[int, int]] = []
    for m in declared:
        group = 1 if m.group(1) is not None else 2
        value = raw[m.start(group) : m.end(group)]  # boundaries are case-sensitive
        close = raw.find(b"--" + value + b"--", m.end())
        events += [(m.end(), 1), (close if close != -1 else len(raw), -1)]
    depth = deepest = 0
    for _, step in sorted(events):
        depth += step
        deepest = max(deepest, depth)
    return deepest


# ---------------------------------------------------------------------------------------------
# Headers -> InboundMessage


def _build(
    raw_size: int, tree: Message, *, text: str, walk: Walk, defects: Defects, own: str = ""
) -> InboundMessage:
    fields = [(name.strip().lower(), _as_str(value)) for name, value in tree.raw_items()]
    from_values = _values(fields, "from")
    from_, problems = all_addresses("from", from_values[:MAX_ADDRESS_FIELDS], strict=True)
    to, to_problems = _addresses(fields, "to")
    cc, cc_problems = _addresses(fields, "cc")
    reply_to, rt_problems = _addresses(fields, "reply-to")
    for problem in (*problems, *to_problems, *cc_problems, *rt_problems):
        defects.add(problem)
    if len(from_values) > 1:
        defects.add(f"{len(from_values)} From header fields")
    unparseable = _nothing_from_the_sender(fields, defects)
    date, bad_date = _date(_first(fields, "date"), defects)
    return InboundMessage(
        raw_size=raw_size,
        from_=from_,
        from_header_count=len(from_values),
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=header_text(_first(fields, "subject")),
        date=date,
        message_id=message_id(_first(fields, "message-id")),
        in_reply_to=_ids(fields, "in-reply-to"),
        references=_ids(fields, "references"),
        headers=_header_map(fields, defects),
        content_type=part_content_type(tree),
        text_body=text,
        own_text=own,
        bad_date=bad_date,
        repeated_fields=_repeated(fields),
        attachments=tuple(walk.attachments),
        part_types=tuple(walk.part_types),
        defects=defects.as_tuple(),
        unparseable=unparseable,
    )


def _only_trace_fields(tree: Message) -> bool:
    # A file that is not mail still arrives with the trace fields the delivering server added
    # (Return-Path, Received, ...), so "some header field" does not make it a message.
    return all(is_trace_name(name.strip().lower()) for name in tree)


def _nothing_from_the_sender(fields: list[tuple[str, str]], defects: Defects) -> bool:
    if not fields:
        defects.add("no header block")
        return True
    if all(is_trace_name(name) for name, _ in fields):
        defects.add("only the fields mail servers add: not a message")
        return True
    return False


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _values(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in fields if key == name]


def _first(fields: list[tuple[str, str]], name: str) -> str:
    for key, value in fields:
        if key == name:
            return value
    return ""


def _addresses(fields: list[tuple[str, str]], name: str) -> tuple[tuple[Address, ...], list[str]]:
    return all_addresses(name, _values(fields, name)[:MAX_ADDRESS_FIELDS], strict=False)


def _ids(fields: list[tuple[str, str]], name: str) -> tuple[str, ...]:
    found: list[str] = []
    for value in _values(fields, name):
        found.extend(message_ids(value))
    return tuple(found[-MAX_REFERENCES:])


def _date(raw: str, defects: Defects) -> tuple[datetime | None, bool]:
    """The Date field as an aware datetime within DATE_RANGE, and whether it was bad.

    Out of range (year 0, year 9999 with any offset, before 1970, far in the future) or
    unreadable counts as bad: the caller falls back to when the message arrived."""
    value = clean(raw, 200)
    if not value:
        return None, False
    try:
        when = parsedate_to_datetime(value)
    except Exception:  # ValueError, TypeError on nonsense
        defects.add("Date unparseable")
        return None, True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        in_range = DATE_RANGE[0] <= when.astimezone(UTC) < DATE_RANGE[1]
    except (OverflowError, ValueError):  # 9999-12-31 at -14:00 is past datetime.max in UTC
        in_range = False
    if not in_range:
        defects.add("Date out of range")
        return None, True
    return when, False


def _repeated(fields: list[tuple[str, str]]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for name, _ in fields:
        if name in SINGLE_FIELDS:
            counts[name] = counts.get(name, 0) + 1
    return tuple(sorted(name for name, count in counts.items() if count > 1))


def _header_map(fields: list[tuple[str, str]], defects: Defects) -> dict[str, tuple[str, ...]]:
    if len(fields) > MAX_HEADER_FIELDS:
        defects.add(f"{len(fields)} header fields: only the first {MAX_HEADER_FIELDS} kept")
    collected: dict[str, list[str]] = {}
    for name, value in fields[:MAX_HEADER_FIELDS]:
        collected.setdefault(clean(name, 100), []).append(header_text(value, MAX_HEADER_VALUE))
    return {name: tuple(values) for name, values in collected.items()}
