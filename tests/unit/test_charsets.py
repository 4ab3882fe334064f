"""Body text from bytes and a declared charset (mailbot.mail.charsets), as mail is written."""

from __future__ import annotations

import pytest

from mailbot.mail.charsets import decode_text


@pytest.mark.parametrize(
    ("declared", "text", "written_in"),
    [
        ("shift_jis", "①の件", "cp932"),  # NEC row 13: Windows only
        ("euc-kr", "똠방각하", "cp949"),  # outside KS X 1001
        ("gb2312", "镕", "gb18030"),  # GBK only
        ("iso-8859-1", "“quoted” €5", "cp1252"),
    ],
)
def test_a_declared_charset_is_read_in_the_superset_senders_write(
    declared: str, text: str, written_in: str
) -> None:
    assert decode_text(text.encode(written_in), declared) == (text, None)


def test_utf8_under_a_wrong_label_is_read_as_utf8() -> None:
    assert decode_text("Grüße, 你好".encode(), "iso-2022-jp") == ("Grüße, 你好", None)


def test_bytes_no_reading_fits_are_read_in_the_declared_charset_with_replacements() -> None:
    text, problem = decode_text(b"ok \x81\xff ok", "euc-kr")
    assert text.startswith("ok ") and text.endswith(" ok") and "\ufffd" in text
    assert problem is None


def test_a_broken_7bit_escape_is_replaced_not_passed_on_as_utf8() -> None:
    # JIS X 0212 is not ISO-2022-JP; the bytes are ASCII, so "valid UTF-8" would keep the
    # escape sequence in the text.
    text, _ = decode_text(b"\x1b$(DAB\x1b(B ok", "iso-2022-jp")
    assert "\x1b" not in text and text.endswith(" ok")


def test_undeclared_8bit_text_is_utf8_else_windows_1252() -> None:
    assert decode_text("café".encode(), None) == ("café", None)
    assert decode_text(b"\x93quoted\x94 \x80 5", None) == ("“quoted” € 5", None)
    assert decode_text(b"\x81\x8d", None) == ("\x81\x8d", None)  # not even Windows-1252


def test_utf8_with_a_stray_latin1_byte_stays_utf8() -> None:
    text, problem = decode_text("привет, ".encode() + b"caf\xe9", "x-no-such-charset")
    assert text == "привет, caf\ufffd"
    assert problem == "unknown charset 'x-no-such-charset'"
