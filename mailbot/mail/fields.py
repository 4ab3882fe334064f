"""A message's header fields as stored -> the values InboundMessage holds. Pure; never raises.

Everything is read from the raw field values (never the stdlib's header objects), every list is
capped, and what is wrong on the way is added to the message's defects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from mailbot.mail.addresses import all_addresses
from mailbot.mail.dedupe import is_trace_name
from mailbot.mail.defects import Defects
from mailbot.mail.headers import MAX_HEADER_VALUE, clean, header_text, message_ids
from mailbot.mail.message import Address

MAX_HEADER_FIELDS = 1000  # header fields kept in InboundMessage.headers
MAX_REFERENCES = 100  # ids kept of References and of In-Reply-To (the last ones)
MAX_ADDRESS_FIELDS = 3  # fields of one address header (From, To, ...) parsed; all counted

# Dates outside this range are not believed: none can be true of mail, and the far ones do not
# survive time zone arithmetic or storage.
DATE_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
# Fields a message has at most once (RFC 5322 3.6). Mail that repeats one is ambiguous about
# who sent it or what it answers, and is never taken as the team's.
SINGLE_FIELDS = frozenset(
    {"from", "sender", "reply-to", "to", "subject", "date", "message-id", "in-reply-to",
     "references"}
)

Fields = list[tuple[str, str]]  # (lower-case name, raw value), in order


def raw_fields(tree: Message) -> Fields:
    return [(name.strip().lower(), _as_str(value)) for name, value in tree.raw_items()]


def only_trace_fields(tree: Message) -> bool:
    # A file that is not mail still arrives with the trace fields the delivering server added
    # (Return-Path, Received, ...), so "some header field" does not make it a message.
    return all(is_trace_name(name.strip().lower()) for name in tree)


def nothing_from_the_sender(fields: Fields, defects: Defects) -> bool:
    if not fields:
        defects.add("no header block")
        return True
    if all(is_trace_name(name) for name, _ in fields):
        defects.add("only the fields mail servers add: not a message")
        return True
    return False


def values(fields: Fields, name: str) -> list[str]:
    return [value for key, value in fields if key == name]


def first(fields: Fields, name: str) -> str:
    for key, value in fields:
        if key == name:
            return value
    return ""


def addresses(
    fields: Fields, name: str, defects: Defects, *, strict: bool = False
) -> tuple[Address, ...]:
    """The addresses of the first MAX_ADDRESS_FIELDS ``name`` fields; strict for From."""
    found, problems = all_addresses(name, values(fields, name)[:MAX_ADDRESS_FIELDS], strict=strict)
    for problem in problems:
        defects.add(problem)
    return found


def ids(fields: Fields, name: str) -> tuple[str, ...]:
    found: list[str] = []
    for value in values(fields, name):
        found.extend(message_ids(value))
    return tuple(found[-MAX_REFERENCES:])


def date(raw: str, defects: Defects) -> tuple[datetime | None, bool]:
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


def repeated(fields: Fields) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for name, _ in fields:
        if name in SINGLE_FIELDS:
            counts[name] = counts.get(name, 0) + 1
    return tuple(sorted(name for name, count in counts.items() if count > 1))


def header_map(fields: Fields, defects: Defects) -> dict[str, tuple[str, ...]]:
    if len(fields) > MAX_HEADER_FIELDS:
        defects.add(f"{len(fields)} header fields: only the first {MAX_HEADER_FIELDS} kept")
    collected: dict[str, list[str]] = {}
    for name, value in fields[:MAX_HEADER_FIELDS]:
        text = header_text(value, MAX_HEADER_VALUE + 1)
        if len(text) > MAX_HEADER_VALUE:
            defects.add(f"a header field over {MAX_HEADER_VALUE} characters: cut")
        collected.setdefault(clean(name, 100), []).append(text[:MAX_HEADER_VALUE])
    return {name: tuple(values) for name, values in collected.items()}


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else str(value)
