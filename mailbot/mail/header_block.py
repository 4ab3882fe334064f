"""Where a message's header block ends, found on the raw bytes without parsing (for the parser,
which bounds what it reads, and for the dedupe key, which must never parse)."""

from __future__ import annotations

import re

MAX_HEADER_BLOCK = 1024 * 1024  # bytes of header block read at most
MAX_HEADER_LINES = 10_000  # lines of header block read at most


def header_end(raw: bytes, start: int = 0) -> int:
    """Where the header block that begins at ``start`` ends: at its first empty line.

    The returned offset is just after the last header line's line ending; the empty line and
    the body follow. Without an empty line, the whole message is header block.
    """
    if raw.startswith((b"\n", b"\r\n", b"\r"), start):
        return start
    if raw.find(b"\n", start, start + MAX_HEADER_BLOCK) == -1:
        # No LF early on: CR-only line endings (old Mac), or a single line.
        cr = raw.find(b"\r\r", start)
        return cr + 1 if cr != -1 else len(raw)
    ends = [p + 1 for p in (raw.find(b"\n\n", start), raw.find(b"\n\r\n", start)) if p != -1]
    return min(ends) if ends else len(raw)


def bounded_header_end(raw: bytes, start: int = 0) -> tuple[int, bool]:
    """The header block's end, cut to MAX_HEADER_BLOCK bytes and MAX_HEADER_LINES lines.

    Returns the offset (always just after a line ending when cut) and whether it was cut.
    """
    end = header_end(raw, start)
    limit = min(end, start + MAX_HEADER_BLOCK)
    newline = b"\n" if raw.find(b"\n", start, limit) != -1 else b"\r"
    if limit == end and raw.count(newline, start, limit) <= MAX_HEADER_LINES:
        return end, False
    pos = start
    for _ in range(MAX_HEADER_LINES):
        found = raw.find(newline, pos, limit)
        if found == -1:
            break
        pos = found + 1
    return pos, True


_LONE_CR = re.compile(rb"\r(?!\n)")


def mend_lone_crs(raw: bytes) -> bytes:
    """The message with each lone CR of its header block made a space, when the block's lines
    end in LF or CRLF; else the message unchanged.

    The stdlib parser ends a header line at a lone CR as well, so ``"Ann\\rLee" <a@x>`` in a
    block of LF lines would lose the field's rest and every field after it to the body. In a
    block of CR-only lines (old Mac: a CR-only empty line before any LF, or more lone CRs than
    LFs) the CRs are the line ends and stay.
    """
    end = header_end(raw)
    crs = raw.count(b"\r", 0, end)
    if not crs:
        return raw
    lfs = raw.count(b"\n", 0, end)
    lone = crs - raw.count(b"\r\n", 0, end)
    blank_cr = raw.find(b"\r\r", 0, end)
    cr_lines = blank_cr != -1 and blank_cr < raw.find(b"\n", 0, end)
    if not lone or lone > lfs or cr_lines:
        return raw
    return _LONE_CR.sub(b" ", raw[:end]) + raw[end:]
