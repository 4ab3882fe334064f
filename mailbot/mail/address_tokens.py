"""An address field's raw value -> the readings worth trying -> tokens, in linear time.

``addresses.py`` tries the readings in order and keeps the first that leaves nothing unusable:

- Lenient about what some mailers write into a display name, where RFC 5322 and 2047 forbid it:
  an encoded word is one atom whatever it holds (``=?utf-8?q?Doe,_Jane?=``), and so is a raw
  ISO-2022-JP run (``ESC $ B`` ... ``ESC ( B``), whose byte pairs include ``" ( < @ \\``. On a
  field that follows the RFCs this reading is the RFC reading; only when it leaves something
  unusable is the field read strictly as RFC 5322 says.
- Both with raw 8-bit bytes taken as UTF-8, else as Latin-1; then both again with those bytes
  left escaped (as the stdlib hands them over) and read in pairs: a byte of 0x80 and over takes
  the byte after it along when that is 0x40-0x7E or 0x80-0xFF, as the lead byte of a Shift_JIS,
  GBK or Big5 letter does. Their second bytes include ``@ [ \\ ]``: ``"\\x83\\x5c"`` is one
  Shift_JIS letter, not a quoted string whose closing quote is escaped.

Every reading only ever widens what counts as display text; an address is refused or accepted
by the same rules in all of them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mailbot.mail.headers import ENCODED_WORD, fix_8bit

SPECIALS = frozenset("<>@,;:.")
_LEAD = "\udc80-\udcff"  # a raw 8-bit byte, surrogate-escaped
_NOT_PLAIN = rf'()<>\[\]:;@\\,."\t\n\r {_LEAD}'
_PAIR = rf"[{_LEAD}][\x40-\x7e{_LEAD}]?"
# Bounded, so that an unterminated run costs at most this much per ESC.
_JIS = r"\x1b\$(?:[@B]|\(D)[^\x1b\r\n]{0,400}\x1b\([BJ]"
# Runs of plain characters, not one at a time: this is the hot loop.
_ATOM = re.compile(rf"(?:[^{_NOT_PLAIN}]+|{_PAIR})+")
_LENIENT_ATOM = re.compile(rf"(?:{_JIS}|[^{_NOT_PLAIN}\x1b]+|\x1b|{_PAIR})+")
_JIS_RUN = re.compile(_JIS)
# What a quoted string or a comment holds between the characters that need a look.
_QUOTED_RUN = re.compile(rf'[^"\\\x1b{_LEAD}]+')
_COMMENT_RUN = re.compile(rf"[^()\\\x1b{_LEAD}]+")


class Token(NamedTuple):
    kind: str  # "atom", "quoted", "special", "literal", "bad"
    text: str
    spaced: bool  # white space or a comment came before it


class Reading(NamedTuple):
    value: str
    lenient: bool


def readings(value: str) -> list[Reading]:
    """The readings of an unfolded field worth trying, in order."""
    fixed = fix_8bit(value)
    lenient = "=?" in value or "\x1b$" in value
    found: list[Reading] = []
    for text in [fixed] if fixed == value else [fixed, value]:
        if lenient:
            found.append(Reading(text, True))
        found.append(Reading(text, False))
    return found


def tokens(value: str, *, lenient: bool = False) -> list[Token]:
    found: list[Token] = []
    i, n = 0, len(value)
    spaced = False
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i += 1
            spaced = True
            continue
        if ch == "(":
            i, closed = _skip_comment(value, i, lenient)
            spaced = True
            if closed:
                continue
            kind, text = "bad", "("
        elif ch == '"':
            i, text, closed = _quoted(value, i, lenient)
            kind = "quoted" if closed else "bad"
        elif ch == "[":
            end = value.find("]", i)
            kind, text = ("literal", value[i : end + 1]) if end != -1 else ("bad", "[")
            i = end + 1 if end != -1 else n
        elif ch in SPECIALS:
            kind, text = "special", ch
            i += 1
        elif ch in ")]\\":
            kind, text = "bad", ch
            i += 1
        else:
            kind, text = "atom", _atom(value, i, lenient)
            i += len(text)
        found.append(Token(kind, text, spaced))
        spaced = False
    return found


def _atom(value: str, i: int, lenient: bool) -> str:
    """The atom at ``i``: anything but white space and specials; controls other than line
    breaks too (they are display text, and an address refuses them later)."""
    if not lenient:
        m = _ATOM.match(value, i)
        return m.group() if m else value[i]
    word = ENCODED_WORD.match(value, i) if value.startswith("=?", i) else None
    end = word.end() if word else i
    m = _LENIENT_ATOM.match(value, end)
    return value[i : max(m.end() if m else end, i + 1)]


def _letter(value: str, i: int, lenient: bool) -> int:
    """Where a letter of several characters that starts at ``i`` ends (a double-byte letter
    whose bytes are still escaped, or an ISO-2022-JP run), or ``i`` when there is none."""
    ch = value[i]
    if "\udc80" <= ch <= "\udcff" and i + 1 < len(value):
        trail = value[i + 1]
        return i + 2 if "\x40" <= trail <= "\x7e" or "\udc80" <= trail <= "\udcff" else i
    if lenient and ch == "\x1b":
        m = _JIS_RUN.match(value, i)
        return m.end() if m else i
    return i


def _skip_comment(value: str, i: int, lenient: bool) -> tuple[int, bool]:
    depth = 0
    while i < len(value):
        plain = _COMMENT_RUN.match(value, i)
        if plain:
            i = plain.end()
            continue
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        end = _letter(value, i, lenient)
        if end > i:
            i = end
            continue
        depth += ch == "("
        depth -= ch == ")"
        i += 1
        if depth == 0:
            return i, True
    return i, False


def _quoted(value: str, i: int, lenient: bool) -> tuple[int, str, bool]:
    out: list[str] = []
    i += 1
    while i < len(value):
        plain = _QUOTED_RUN.match(value, i)
        if plain:
            out.append(plain.group())
            i = plain.end()
            continue
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        elif (end := _letter(value, i, lenient)) > i:
            out.append(value[i:end])
            i = end
        elif ch == '"':
            return i + 1, "".join(out), True
        else:
            out.append(ch)
            i += 1
    return i, "".join(out), False
