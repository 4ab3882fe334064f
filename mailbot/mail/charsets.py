"""The text of a body part from its bytes and the charset it declares, as mail is really written.

Senders declare a charset and then write in its Windows superset (GB2312 declared, GBK or
GB18030 characters written; Shift_JIS and CP932; EUC-KR and CP949; ISO-8859-1 and Windows-1252),
or declare one and write UTF-8. So a part is read, first that works:

1. strictly in the declared charset's superset (or the declared charset when it has none);
2. strictly as UTF-8, when there are 8-bit bytes at all (pure ASCII in a 7-bit charset such as
   ISO-2022-JP is that charset's escapes, never UTF-8);
3. in the declared charset with replacement characters.

An unknown charset (or none) is read as UTF-8 when the bytes are valid UTF-8 or mostly so (a
stray Latin-1 byte in UTF-8 text becomes a replacement character), else as Windows-1252
(Latin-1's superset: curly quotes and the euro sign instead of controls), else as Latin-1, which
never fails. Pure; never raises.
"""

from __future__ import annotations

import codecs

from mailbot.mail.headers import charset_problem, clean

# Declared charset (Python's codec name) -> the superset senders write in its name.
SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "iso8859-1": "cp1252",
}
_EIGHT_BIT = bytes(range(0x80, 0x100))


def decode_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """The text of ``data`` and a defect to record (or None)."""
    codec, problem = _codec(charset)
    if codec is None:
        return _undeclared(data), problem
    try:
        return data.decode(SUPERSETS.get(codec, codec)), None
    except UnicodeDecodeError:
        pass
    except Exception:  # a codec that breaks on its own input; not ours to fix
        return _undeclared(data), f"charset {clean(str(charset), 40)!r} failed"
    if not data.isascii():
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(codec, "replace"), None
    except Exception:
        return _undeclared(data), f"charset {clean(str(charset), 40)!r} failed"


def _codec(charset: str | None) -> tuple[str | None, str | None]:
    """Python's name for the declared charset, or None and the defect that says why not."""
    if not charset:
        return None, None
    problem = charset_problem(charset)
    if problem:
        return None, problem
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name, None
    except Exception:
        return None, f"unknown charset {clean(charset, 40)!r}"


def _undeclared(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    eight_bit = len(data) - len(data.translate(None, _EIGHT_BIT))
    if text.count("\ufffd") * 2 < eight_bit:  # most 8-bit bytes were UTF-8 characters
        return text
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")
