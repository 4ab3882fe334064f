"""Header values as they arrive -> clean display text and message ids (pure, never raising).

Every function here takes what a sender wrote, so each one bounds its work by the length of its
input and turns any failure into an empty or partial answer instead of an exception. Address
fields have their own parser in ``addresses.py``.
"""

from __future__ import annotations

import base64
import binascii
import re

MAX_HEADER_VALUE = 8 * 1024  # characters kept of each decoded header value
MAX_ID_LENGTH = 998  # a Message-ID longer than an RFC 5322 line is not one

# Unfolding: a line break followed by white space is folding, not content (RFC 5322 2.2.3).
_FOLD = re.compile(r"\r\n(?=[ \t])|\n(?=[ \t])|\r(?=[ \t])")
# C0/C1 controls, DEL, line/paragraph separators, lone surrogates, and the bidi embeddings,
# overrides and isolates that make a value display as something other than what it says.
_HEADER_JUNK = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]+"
)
_SPACES = re.compile(r"\s+")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([qQbB])\?([^?\s]*)\?=")
_MSG_ID = re.compile(r"<[^<>\s]{1,996}>")


def fix_8bit(value: str) -> str:
    """Undo the stdlib's surrogateescape of raw 8-bit header bytes: UTF-8, else Latin-1."""
    if not _ESCAPED_BYTE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def unfold(value: str) -> str:
    return _FOLD.sub("", value)


def clean(value: str, limit: int = MAX_HEADER_VALUE) -> str:
    """One line of display text: no controls, runs of white space collapsed, capped."""
    return _SPACES.sub(" ", _HEADER_JUNK.sub(" ", value)).strip()[:limit]


def charset_problem(charset: str | None) -> str | None:
    """A defect when Python has no text codec for a declared charset, else None."""
    if not charset:
        return None
    try:
        b"x".decode(_charset_name(charset))  # b"" would not even look the codec up
    except LookupError:
        return f"unknown charset {clean(charset, 40)!r}"
    except Exception:
        return None
    return None


def _charset_name(charset: str) -> str:
    return charset.strip().strip('"').lower()


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text from bytes in a declared charset; unknown or failing charsets fall back.

    Returns the text and a defect (or None). An unknown charset is read as UTF-8 when the bytes
    are valid UTF-8, else as Latin-1, which never fails.
    """
    problem = charset_problem(charset)
    if charset and not problem:
        try:
            return data.decode(_charset_name(charset), "replace"), None
        except Exception:  # a codec that breaks on its own input; not ours to fix
            problem = f"charset {clean(charset, 40)!r} failed"
    try:
        return data.decode("utf-8"), problem
    except UnicodeDecodeError:
        return data.decode("latin-1"), problem


def decode_words(value: str) -> str:
    """RFC 2047: decode every encoded word; white space between adjacent words is dropped."""
    out: list[str] = []
    run: list[tuple[str, bytes]] = []  # adjacent words, joined before decoding (split chars)
    pos = 0
    for m in ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        if gap.strip() or not run:
            _flush(run, out)
            out.append(gap)
        word = _word_bytes(m)
        if word is None:
            _flush(run, out)
            out.append(m.group(0))
        else:
            run.append(word)
        pos = m.end()
    _flush(run, out)
    out.append(value[pos:])
    return "".join(out)


def _word_bytes(m: re.Match[str]) -> tuple[str, bytes] | None:
    charset = m.group(1).partition("*")[0]  # RFC 2231 language suffix
    data = m.group(3)
    try:
        if m.group(2) in "bB":
            raw = base64.b64decode(data + "=" * (-len(data) % 4))
        else:
            raw = binascii.a2b_qp(data.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return None
    return charset, raw


def _flush(run: list[tuple[str, bytes]], out: list[str]) -> None:
    while run:
        charset = run[0][0]
        same = 1
        while same < len(run) and run[same][0].lower() == charset.lower():
            same += 1
        out.append(decode_bytes(b"".join(data for _, data in run[:same]), charset)[0])
        del run[:same]


def header_text(raw: str, limit: int = MAX_HEADER_VALUE) -> str:
    """A raw header value as clean display text: 8-bit fixed, unfolded, decoded, capped."""
    value = unfold(fix_8bit(raw[: limit * 4]))
    return clean(decode_words(value), limit)


def message_ids(raw: str) -> list[str]:
    """Every ``<...>`` id in a Message-ID, In-Reply-To or References value, in order."""
    return _MSG_ID.findall(unfold(fix_8bit(raw)))


def message_id(raw: str) -> str:
    """The first ``<...>`` id, or a bare id wrapped in brackets, or ""."""
    ids = message_ids(raw)
    if ids:
        return clean(ids[0], MAX_ID_LENGTH)
    bare = clean(raw, MAX_ID_LENGTH + 1)
    if bare and " " not in bare and len(bare) <= MAX_ID_LENGTH - 2 and "<" not in bare:
        return f"<{bare}>"
    return ""
