"""The canonical form a message's dedupe key is computed over. Pure; never raises on bytes.

The same message reaches mailbot in several shapes: over IMAP with CRLF line endings, as an .eml
export with LF, inside an mbox (after a ``From `` separator line, with body lines that began
``From `` quoted as ``>From``, and a blank line added before the next message), with trailing
whitespace trimmed or added by some tool on the way. The canonical form undoes all of that:

- every line ends in a single LF, whatever it ended in (CRLF, LF, a lone CR as old Macs wrote,
  none at the very end);
- trailing spaces, tabs and CRs of every line are dropped;
- a line of ``>From ``, ``>>From `` ... loses its ``>`` quoting (mboxo, mboxrd and formail
  quote differently, and some quote a malformed header block's lines too; unquoting them all
  gives one answer);
- blank lines before a line that begins ``--`` (a MIME boundary) and at the very end of the
  body are dropped.

Removing the mbox separator and the trace fields that servers add is the caller's part
(``mailbot.mail.parse.dedupe_key``). Two messages that differ in anything else, a word of the
body or a header field the sender wrote, still differ.

The body is read in chunks of about a megabyte, so a 25 MB message never costs a second copy of
itself, and every rule is a linear-time scan.
"""

from __future__ import annotations

from collections.abc import Iterator

CHUNK = 1024 * 1024
_TRAILING = b" \t\r"
_LF, _SPACE, _TAB, _GT = 10, 32, 9, 62


def header_field(field: bytes) -> bytes:
    """One header field (with its continuation lines) in canonical form."""
    return b"".join(_unquote(line.rstrip(_TRAILING)) + b"\n" for line in field.splitlines())


def _unquote(line: bytes) -> bytes:
    """``>From `` (any number of ``>``) -> ``From ``; any other line as it is."""
    if line[:1] == b">":
        unquoted = line.lstrip(b">")
        if unquoted[:5] == b"From ":
            return unquoted
    return line


def body(raw: bytes, start: int = 0) -> Iterator[bytes]:
    """``raw[start:]`` (the body: everything from the blank line after the header block on) in
    canonical form, chunk by chunk. A chunk always ends at a line's end; the LFs at its end are
    held back and written before the next text, so that no rule sees half a run of them, and
    those at the very end become one."""
    held = 0  # LFs at the end of what was read so far, not yet written
    wrote = False
    pos, size = start, len(raw)
    while pos < size:
        newline = raw.find(b"\n", min(pos + CHUNK, size))
        end = size if newline == -1 else newline + 1
        text = raw[pos:end]
        pos = end
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
            if b"\r" in text:
                text = text.replace(b"\r", b"\n")
        text = _without_quoting(_without_trailing_blanks(text))
        kept = text.rstrip(b"\n")
        if not kept:
            held += len(text)
            continue
        yield _without_blank_lines_before_boundaries(b"\n" * held + kept if held else kept)
        wrote = True
        held = len(text) - len(kept)
    if wrote:
        yield b"\n"


# The three rules below find their trigger with bytes.find (C speed, and most mail has none)
# and look back from each hit only over the run that ends there: linear time on any input.


def _without_trailing_blanks(text: bytes) -> bytes:
    text = text.rstrip(b" \t")
    space, tab = text.find(b" \n"), text.find(b"\t\n")
    if space == tab == -1:
        return text
    parts, pos = [], 0
    while space != -1 or tab != -1:
        hit = space if tab == -1 or (space != -1 and space < tab) else tab
        begin = hit
        while begin > pos and text[begin - 1] in (_SPACE, _TAB):
            begin -= 1
        parts.append(text[pos:begin])
        pos = hit + 1  # at the LF
        if space != -1 and space < pos:
            space = text.find(b" \n", pos)
        if tab != -1 and tab < pos:
            tab = text.find(b"\t\n", pos)
    parts.append(text[pos:])
    return b"".join(parts)


def _without_quoting(text: bytes) -> bytes:
    if b">From " not in text:
        return text
    parts, pos, search = [], 0, 0
    while (hit := text.find(b">From ", search)) != -1:
        begin = hit
        while begin > pos and text[begin - 1] == _GT:
            begin -= 1
        if begin == 0 or text[begin - 1] == _LF:
            parts.append(text[pos:begin])
            pos = hit + 1  # at "From "
        search = hit + 1
    parts.append(text[pos:])
    return b"".join(parts)


def _without_blank_lines_before_boundaries(text: bytes) -> bytes:
    if b"\n\n--" not in text:
        return text
    parts, pos = [], 0
    while (hit := text.find(b"\n\n--", pos)) != -1:
        begin = hit
        while begin > pos and text[begin - 1] == _LF:
            begin -= 1
        parts.append(text[pos : begin + 1])  # the line's own LF stays
        pos = hit + 2  # at "--"
    parts.append(text[pos:])
    return b"".join(parts)
