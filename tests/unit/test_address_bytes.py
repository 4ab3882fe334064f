"""Address fields whose display names carry raw bytes: double-byte charsets, NUL, CR, bidi marks.

The address must come through exactly; the display name may come out garbled but never costs
the address. Messages go through ``parse_message`` as bytes, the way they arrive.
"""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail.addresses import parse_addresses
from mailbot.mail.header_block import mend_lone_crs
from mailbot.mail.message import Address, InboundMessage
from mailbot.mail.parse import header_block_sender, parse_message

ADDR = "j@example.org"
# What must never reach a display name: controls, line breaks, bidi embeddings and overrides.
UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# Display names as they arrive, each holding something that used to make the field unusable.
DISPLAY_NAMES = {
    # An encoded word, then Shift_JIS "ソフト": 0x5C, the trail byte of "ソ", is a backslash.
    "encoded word and Shift_JIS": b"=?utf-8?q?J=C3=BCrgen?= \x83\x5c\x83\x74\x83\x67",
    "quoted Shift_JIS ending in 0x5C": b'"\x83\x5c"',
    "Shift_JIS with a 0x5C before the closing quote": b'"\x83\x5c\x83\x5c" ',
    # Big5 "功" is A5 5C; GBK has trail bytes 0x40 "@" and 0x5B "[".
    "Big5 with a backslash trail byte": b"\xa5\x5c\xa4\xe5",
    "GBK with @ and [ trail bytes": b"\x81\x40\x81\x5b\x81\x5d",
    "quoted GBK with an @ trail byte": b'"\x81\x40"',
    "in a comment": b"(\x83\x5c) Ann",
    "EUC-KR": b"\xb1\xe8\xc3\xb6",
    "Latin-1 before the closing quote": b'"Jos\xe9"',
    "NUL unquoted": b"Ju\x00rgen",
    "NUL quoted": b'"Ju\x00rgen"',
    "other controls": b"a\x01\x0b\x0c\x1b\x7fb",
    "bidi override, raw UTF-8": "\u202eJ\u00fcrgen".encode(),
    "bidi override, encoded word": b"=?utf-8?b?4oCuSsO8cmdlbg==?=",
    "lone CR quoted": b'"Ju\rrgen"',
    "lone CR unquoted": b"Ju\rrgen",
    "mixed encoded words and raw UTF-8": b"=?iso-8859-1?q?J=FCr?= \xc3\xbc =?utf-8?q?gen?=",
    # Encoded words some mailers write with specials left unencoded.
    "encoded word with a comma": b"=?utf-8?q?Doe,_J=C3=BCrgen?=",
    "encoded word with a colon": b"=?utf-8?q?Re:_J=C3=BCrgen?=",
    "encoded word with quote, parenthesis, @, brackets": b'=?utf-8?q?"a"(b)@[c]<d>;\\?=',
    # Raw ISO-2022-JP, 7-bit: "<" (0x3C) is the first byte of many kanji, as in "株式会社".
    "raw ISO-2022-JP": "ソフト株式会社".encode("iso2022_jp"),
    "raw ISO-2022-JP quoted, with a quote and a backslash byte": b'"\x1b$B!"\\\x1b(B"',
    "raw ISO-2022-JP in a comment": b"(\x1b$B3t<02q<R\x1b(B) Ann",
}


def _message(field: bytes, *, ending: bytes = b"\n", rest: bytes = b"") -> bytes:
    lines = [b"From: a@example.org", b"To: t@example.org", b"Subject: s"]
    lines = [line for line in lines if not field.lower().startswith(line[:4].lower())]
    lines.insert(0, field)
    return ending.join([*lines, rest] if rest else lines) + ending + ending + b"body" + ending


def _only(msg: InboundMessage, name: str) -> Address:
    addresses = {"from": msg.from_, "to": msg.to, "cc": msg.cc, "reply-to": msg.reply_to}[name]
    assert [a.addr for a in addresses] == [ADDR]
    return addresses[0]


@pytest.mark.parametrize("shape", list(DISPLAY_NAMES))
def test_the_sender_survives_any_display_name(shape: str) -> None:
    msg = parse_message(_message(b"From: " + DISPLAY_NAMES[shape] + b" <" + ADDR.encode() + b">"))
    assert msg.sender == Address(msg.from_[0].name, ADDR)
    assert msg.subject == "s"  # and nothing after the From field was lost
    assert not [d for d in msg.defects if "From" in d]
    assert not UNSHOWABLE.search(msg.sender.name)  # shown, never obeyed


def test_display_names_are_decoded_where_the_charset_is_known() -> None:
    def name(raw: bytes) -> str:
        sender = parse_message(_message(b"From: " + raw + b" <" + ADDR.encode() + b">")).sender
        assert sender is not None
        return sender.name

    assert name(DISPLAY_NAMES["encoded word and Shift_JIS"]).startswith("Jürgen ")
    assert name(DISPLAY_NAMES["encoded word with a comma"]) == "Doe, Jürgen"
    assert name(DISPLAY_NAMES["encoded word with a colon"]) == "Re: Jürgen"
    assert name(DISPLAY_NAMES["raw ISO-2022-JP"]) == "ソフト株式会社"
    assert name(DISPLAY_NAMES["bidi override, raw UTF-8"]) == "Jürgen"


@pytest.mark.parametrize("header", ["To", "Cc", "Reply-To"])
@pytest.mark.parametrize("shape", list(DISPLAY_NAMES))
def test_every_address_field_keeps_its_address(header: str, shape: str) -> None:
    field = header.encode() + b": " + DISPLAY_NAMES[shape] + b" <" + ADDR.encode() + b">"
    _only(parse_message(_message(field)), header.lower())


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_lone_cr_does_not_end_the_header_line(ending: bytes) -> None:
    field = b'From: "Ann\rLee" <' + ADDR.encode() + b">"
    raw = _message(field, ending=ending, rest=b"Cc: c@x.test")
    msg = parse_message(raw)
    assert msg.sender == Address("Ann Lee", ADDR)
    assert [a.addr for a in msg.cc] == ["c@x.test"]
    assert header_block_sender(raw) == Address("Ann Lee", ADDR)


def test_a_lone_cr_cannot_add_a_header_field() -> None:
    # Read as a line end, the CR would make an In-Reply-To that ties this mail to a case.
    raw = _message(b"Subject: hi\rIn-Reply-To: <team@x.test>")
    msg = parse_message(raw)
    assert (msg.subject, msg.in_reply_to) == ("hi In-Reply-To: <team@x.test>", ())
    assert "in-reply-to" not in msg.headers


def test_cr_only_line_ends_stay_line_ends() -> None:
    raw = b"From: Ann <a@x.test>\rSubject: old mac\r\rbody\nwith an LF\n"
    assert mend_lone_crs(raw) == raw
    msg = parse_message(raw)
    assert (msg.sender, msg.subject) == (Address("Ann", "a@x.test"), "old mac")


def test_only_the_header_block_is_mended() -> None:
    raw = b'From: "A\rB" <a@x.test>\n\nbody\rwith a CR\n'
    assert mend_lone_crs(raw) == b'From: "A B" <a@x.test>\n\nbody\rwith a CR\n'


def _escaped(raw: bytes) -> str:
    """A field as the stdlib hands it over: raw 8-bit bytes surrogate-escaped."""
    return raw.decode("ascii", "surrogateescape")


@pytest.mark.parametrize(
    "raw",
    [
        # A trail byte may not smuggle in a second address or hide a real one.
        b"\x83\x5c <evil@x.test> <j@example.org>",
        b"\x83<evil@x.test> <j@example.org>",
        b'"\x83\x5c" <evil@x.test>, j@example.org <a@b.test>',
        # Controls and 8-bit bytes are display text, never address text.
        b"j\x00@example.org",
        b"<j\x00@example.org>",
        b"<j@exam\x00ple.org>",
        b"<j\x83\x5c@example.org>",
        b"\x83\x5c@example.org",
        # Still refused, as before: unbalanced quotes and brackets.
        b'"\x83\x5c <j@example.org>',
        b"\x83\x5c <j@example.org",
        # An encoded word or an ISO-2022-JP run is display text; around it, the rules hold.
        b"=?utf-8?q?a,b?= <evil@x.test> <j@example.org>",
        b"=?utf-8?q?a,b?=@example.org",
        b"\x1b$B3t\x1b(B <evil@x.test> <j@example.org>",
        b"\x1b$B3t\x1b(B@example.org",
    ],
)
def test_a_strict_field_stays_strict_with_raw_bytes(raw: bytes) -> None:
    assert parse_addresses("from", _escaped(raw), strict=True) == ((), "From header unparseable")


def test_utf8_and_latin1_readings_come_first() -> None:
    assert parse_addresses("from", _escaped("Jöhn <jöhn@exämple.test>".encode()), strict=True) == (
        (Address("Jöhn", "jöhn@exämple.test"),),
        None,
    )
    # A Latin-1 local part is read as Latin-1, as before.
    assert parse_addresses("from", _escaped(b"jos\xe9@example.org"), strict=True) == (
        (Address("", "jos\xe9@example.org"),),
        None,
    )


def test_a_lax_field_keeps_the_best_reading() -> None:
    raw = b"\x83\x5c <a@x.test>, <bad@>, b@x.test"
    found, problem = parse_addresses("to", _escaped(raw), strict=False)
    assert [a.addr for a in found] == ["a@x.test", "b@x.test"] and problem is None


# ---------------------------------------------------------------------------------------------
# Any display name


_STRUCTURE = frozenset(b'\r\n"()<>[]:;@\\,')
_plain_byte = st.integers(0, 0x7F).filter(lambda b: b not in _STRUCTURE).map(lambda b: bytes([b]))
_double_byte = st.tuples(
    st.integers(0x81, 0xFE), st.integers(0x40, 0xFE).filter(lambda b: b != 0x7F)
).map(bytes)
_lone_high_byte = st.integers(0x80, 0xFF).map(lambda b: bytes([b, 0x20]))
_encoded_word = st.text(max_size=12).map(
    lambda t: b"=?utf-8?b?" + base64.b64encode(t.encode("utf-8", "replace")) + b"?="
)
# Raw ISO-2022-JP: ESC $ B, pairs of bytes 0x21-0x7E (any of them a special), ESC ( B.
_jis_run = st.lists(
    st.binary(min_size=2, max_size=2).map(lambda b: bytes(0x21 + c % 94 for c in b)),
    min_size=1,
    max_size=6,
).map(lambda pairs: b"\x1b$B" + b"".join(pairs) + b"\x1b(B")
_quoted_unit = st.one_of(
    _plain_byte,
    _double_byte,
    _jis_run,
    st.sampled_from([b"(", b")", b"<", b">", b"@", b",", b";", b":", b"[", b"]", b"\\\\", b'\\"']),
)
_quoted = st.lists(_quoted_unit, max_size=12).map(lambda units: b'"' + b"".join(units) + b'"')
_display_name = st.lists(
    st.one_of(
        _plain_byte, _double_byte, _lone_high_byte, _encoded_word, _jis_run, _quoted, st.just(b" ")
    ),
    max_size=16,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(name=_display_name, header=st.sampled_from(["From", "To", "Cc", "Reply-To"]))
def test_any_display_name_keeps_its_address(name: bytes, header: str) -> None:
    field = header.encode() + b": " + name + b" <local@example.org>"
    msg = parse_message(_message(field))
    addresses = {"From": msg.from_, "To": msg.to, "Cc": msg.cc, "Reply-To": msg.reply_to}[header]
    assert [a.addr for a in addresses] == ["local@example.org"]
    assert not UNSHOWABLE.search(addresses[0].name)


def test_a_block_of_mostly_cr_lines_is_left_alone() -> None:
    raw = b"From: a@x.test\rTo: b@x.test\rSubject: s\n\nbody\n"
    assert mend_lone_crs(raw) == raw
