"""parse_message, dedupe_key and header_block_sender: what they read, and what they refuse."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailbot.mail.headers import MAX_HEADER_VALUE
from mailbot.mail.message import Address, InboundMessage
from mailbot.mail.parse import (
    MAX_HEADER_FIELDS,
    MAX_PARTS,
    MAX_REFERENCES,
    MAX_TEXT,
    dedupe_key,
    header_block_sender,
    parse_message,
)

DATA = Path(__file__).resolve().parents[1] / "data"
# Pathological inputs must come back in "a second or two"; the bound is looser so that a loaded
# CI machine does not fail the test, yet any quadratic blow-up (tens of seconds) still does.
QUICK = 5.0


def mail(*headers: str, body: str = "Hello.\n") -> bytes:
    return ("\n".join(headers) + "\n\n" + body).encode("utf-8")


def plain(**overrides: str) -> bytes:
    fields = {
        "From": "Rita Reporter <rita@reporter.example>",
        "To": "security@example.test",
        "Subject": "XSS in the login form",
        "Date": "Mon, 02 Nov 2026 10:15:00 +0100",
        "Message-ID": "<r1@reporter.example>",
    }
    fields.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return mail(*(f"{k}: {v}" for k, v in fields.items()), body="The next parameter reflects.\n")


def timed(raw: bytes, **kwargs: int) -> tuple[float, InboundMessage]:
    started = time.perf_counter()
    msg = parse_message(raw, **kwargs)
    return time.perf_counter() - started, msg


# ---------------------------------------------------------------------------------------------
# Ordinary mail


def test_plain_message_yields_its_fields() -> None:
    raw = mail(
        "From: Rita Reporter <Rita@Reporter.Example>",
        "To: security@example.test, Bob <bob@example.test>",
        "Cc: carol@example.test",
        "Reply-To: rita.private@reporter.example",
        "Subject: XSS in the login form",
        "Date: Mon, 02 Nov 2026 10:15:00 +0100",
        "Message-ID: <r1@reporter.example>",
        "In-Reply-To: <a@x.example>",
        "References: <root@x.example> <a@x.example>",
        "X-Custom: one",
        "X-Custom: two",
        body="The next parameter reflects.\r\n",
    )
    msg = parse_message(raw)
    assert msg.sender == Address(name="Rita Reporter", addr="rita@reporter.example")
    assert msg.from_header_count == 1
    assert [a.addr for a in msg.to] == ["security@example.test", "bob@example.test"]
    assert [a.addr for a in msg.cc] == ["carol@example.test"]
    assert [a.addr for a in msg.reply_to] == ["rita.private@reporter.example"]
    assert msg.subject == "XSS in the login form"
    assert msg.date == datetime(2026, 11, 2, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert msg.message_id == "<r1@reporter.example>"
    assert msg.in_reply_to == ("<a@x.example>",)
    assert msg.references == ("<root@x.example>", "<a@x.example>")
    assert msg.headers["x-custom"] == ("one", "two")
    assert msg.header("SUBJECT") == "XSS in the login form"
    assert msg.content_type == "text/plain"
    assert msg.text_body == "The next parameter reflects.\n"
    assert msg.raw_size == len(raw)
    assert not msg.unparseable
    assert msg.defects == ()


def test_date_without_zone_is_read_as_utc() -> None:
    msg = parse_message(plain(Date="Mon, 02 Nov 2026 10:15:00 -0000"))
    assert msg.date == datetime(2026, 11, 2, 10, 15, tzinfo=UTC)


def test_unparseable_date_is_none_and_noted() -> None:
    msg = parse_message(plain(Date="the day before yesterday"))
    assert msg.date is None
    assert "Date unparseable" in msg.defects


def test_references_keep_only_the_last_hundred() -> None:
    ids = " ".join(f"<id{i}@x.example>" for i in range(250))
    msg = parse_message(plain(References=ids))
    assert len(msg.references) == MAX_REFERENCES
    assert msg.references[-1] == "<id249@x.example>"
    assert msg.references[0] == f"<id{250 - MAX_REFERENCES}@x.example>"


def test_bare_message_id_gets_brackets() -> None:
    assert parse_message(plain(Message_ID="bare-id@x.example")).message_id == "<bare-id@x.example>"


# ---------------------------------------------------------------------------------------------
# Header decoding


def test_subject_is_rfc2047_decoded() -> None:
    msg = parse_message(plain(Subject="=?utf-8?q?Caf=C3=A9?= =?utf-8?b?IOKAkyBTUUxp?= in login"))
    assert msg.subject == "Café – SQLi in login"


def test_encoded_word_split_inside_a_character_is_joined() -> None:
    # "é" is C3 A9 in UTF-8; the two bytes sit in two adjacent encoded words.
    assert parse_message(plain(Subject="=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=")).subject == "café"


def test_control_characters_never_survive_in_the_subject() -> None:
    msg = parse_message(plain(Subject="=?utf-8?q?hi=0D=0ABcc:_x@evil.test=00=E2=80=AE?="))
    assert msg.subject == "hi Bcc: x@evil.test"
    assert not any(ch in msg.subject for ch in "\r\n\x00\u202e")


def test_raw_utf8_header_bytes_are_decoded() -> None:
    raw = plain(Subject="Überweisung bei Zahlungsfreigabe")
    assert parse_message(raw).subject == "Überweisung bei Zahlungsfreigabe"


def test_raw_latin1_header_bytes_do_not_break_parsing() -> None:
    raw = plain().replace(b"Subject: XSS", b"Subject: caf\xe9 XSS")
    assert parse_message(raw).subject == "café XSS in the login form"


def test_header_values_are_capped() -> None:
    msg = parse_message(plain(X_Long="x" * (MAX_HEADER_VALUE * 3)))
    assert len(msg.headers["x-long"][0]) == MAX_HEADER_VALUE


def test_header_field_count_is_capped() -> None:
    raw = mail(
        "From: rita@reporter.example", *(f"X-N{i}: v" for i in range(MAX_HEADER_FIELDS + 50))
    )
    msg = parse_message(raw)
    assert sum(len(v) for v in msg.headers.values()) == MAX_HEADER_FIELDS
    assert any("header fields: only the first" in d for d in msg.defects)


# ---------------------------------------------------------------------------------------------
# From, strictly


def test_encoded_word_display_name_never_becomes_the_address() -> None:
    msg = parse_message(plain(From="=?utf-8?q?alice=40example.com?= <evil@x.test>"))
    assert msg.sender == Address(name="alice@example.com", addr="evil@x.test")


def test_encoded_word_alone_is_no_address() -> None:
    msg = parse_message(plain(From="=?utf-8?b?YWxpY2VAZXhhbXBsZS5jb20=?="))
    assert msg.from_ == ()
    assert msg.sender is None


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com@evil.test",
        '"alice@example.com"@evil.test',
        "alice@example.com <bob@evil.test>",
        "Alice <alice@example.com> <bob@evil.test>",
        "<alice@example.com",
        "alice@[127.0.0.1]",
        "MAILER-DAEMON <>",
        "user2",
        "x" * 9000 + "@example.com",
    ],
)
def test_ambiguous_from_yields_no_address(value: str) -> None:
    msg = parse_message(plain(From=value))
    assert msg.from_ == ()
    assert msg.sender is None
    assert any(d.startswith("From header") for d in msg.defects)


def test_from_address_is_lower_cased_and_keeps_its_display_name() -> None:
    msg = parse_message(plain(From='"Doe, Jane" <Jane.Doe@Example.COM>'))
    assert msg.sender == Address(name="Doe, Jane", addr="jane.doe@example.com")


def test_two_from_fields_are_counted_and_leave_no_sender() -> None:
    raw = plain().replace(b"To:", b"From: mallory@evil.test\nTo:", 1)
    msg = parse_message(raw)
    assert msg.from_header_count == 2
    assert [a.addr for a in msg.from_] == ["rita@reporter.example", "mallory@evil.test"]
    assert msg.sender is None


def test_two_addresses_in_one_from_leave_no_sender() -> None:
    msg = parse_message(plain(From="rita@reporter.example, bob@example.test"))
    assert len(msg.from_) == 2
    assert msg.sender is None


def test_unusable_to_addresses_are_skipped_not_fatal() -> None:
    msg = parse_message(plain(To="undisclosed-recipients:;, bob@example.test, junk"))
    assert [a.addr for a in msg.to] == ["bob@example.test"]


# ---------------------------------------------------------------------------------------------
# Bodies and attachments


def test_html_only_mail_is_converted_to_text() -> None:
    msg = parse_message((DATA / "html-only.eml").read_bytes())
    assert msg.subject == "Stored XSS in the “profile” page"
    assert "The profile page renders the bio field unescaped." in msg.text_body
    assert "<script>alert(1)</script>" in msg.text_body  # the entities, decoded: text, not HTML
    assert "color: red" not in msg.text_body


def test_plain_part_wins_over_html_alternative() -> None:
    raw = mail(
        "From: rita@reporter.example",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="b"',
        body="--b\nContent-Type: text/plain\n\nplain words\n--b\nContent-Type: text/html\n\n"
        "<p>html words</p>\n--b--\n",
    )
    assert parse_message(raw).text_body.strip() == "plain words"


def test_armored_text_of_a_message_without_a_text_part_is_its_text() -> None:
    # PGP/MIME that could not be opened: the armored block is what a person can still use;
    # a binary part never is text.
    armored = "-----BEGIN PGP MESSAGE-----\n\nhF4DHXHP849rSK8S\n-----END PGP MESSAGE-----\n"
    raw = mail(
        "From: rita@reporter.example",
        "MIME-Version: 1.0",
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"',
        body="--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
        f"{base64.b64encode(bytes(range(256))).decode()}\n"
        f"--b\nContent-Type: application/octet-stream\n\n{armored}--b--\n",
    )
    msg = parse_message(raw)
    assert msg.text_body == armored.rstrip("\n")
    assert [a.content_type for a in msg.attachments] == ["image/png", "application/octet-stream"]
    assert msg.own_text == ""


def test_unknown_charset_falls_back_and_is_noted() -> None:
    msg = parse_message((DATA / "unknown-charset.eml").read_bytes())
    assert "привет" in msg.text_body
    assert "unknown charset 'x-no-such-charset'" in msg.defects


def test_text_body_has_no_nul_or_control_characters() -> None:
    msg = parse_message(plain().replace(b"The next", b"The\x00 \x1b[31mnext"))
    assert msg.text_body == "The [31mnext parameter reflects.\n"


def test_text_body_is_capped() -> None:
    raw = mail("From: rita@reporter.example", body="a" * (MAX_TEXT + 1000))
    msg = parse_message(raw)
    assert len(msg.text_body) == MAX_TEXT
    assert any("text body over" in d for d in msg.defects)


def test_attachment_metadata_has_a_display_safe_name_and_the_payload_hash() -> None:
    msg = parse_message((DATA / "attachment.eml").read_bytes())
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    (attachment,) = msg.attachments
    assert attachment.content_type == "image/gif"
    assert attachment.size == len(gif)
    assert attachment.sha256 == hashlib.sha256(gif).hexdigest()
    assert "/" not in attachment.filename and "\r" not in attachment.filename
    assert "\n" not in attachment.filename
    assert attachment.filename == ".._.._etc_passwd X-Injected: 1.gif"
    assert msg.text_body.strip() == "The GIF below crashes the thumbnailer."


def test_encoded_attachment_filename_is_decoded() -> None:
    payload = base64.b64encode(b"%PDF-1.4").decode()
    raw = mail(
        "From: rita@reporter.example",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body="--b\nContent-Type: text/plain\n\nsee PoC\n--b\n"
        'Content-Type: application/pdf; name="=?utf-8?q?Pr=C3=BCfung.pdf?="\n'
        f"Content-Transfer-Encoding: base64\n\n{payload}\n--b--\n",
    )
    (attachment,) = parse_message(raw).attachments
    assert attachment.filename == "Prüfung.pdf"
    assert attachment.size == 8


def test_forwarded_message_does_not_lend_its_headers_to_the_outer_fields() -> None:
    msg = parse_message((DATA / "forwarded-bounce.eml").read_bytes())
    assert msg.sender == Address(name="Rita Reporter", addr="rita@reporter.example")
    assert msg.subject == "Fwd: strange bounce after the password reset"
    assert msg.message_id == "<fwd-1@reporter.example>"
    assert "auto-submitted" not in msg.headers
    assert "list-id" not in msg.headers
    assert "x-mailbot-loop" not in msg.headers
    assert msg.part_types == ("multipart/mixed", "text/plain", "message/rfc822")
    assert [(a.filename, a.content_type) for a in msg.attachments] == [
        ("bounce.eml", "message/rfc822")
    ]
    assert msg.text_body.startswith("Hello security team,")


# ---------------------------------------------------------------------------------------------
# When the structure is broken or would take too long


def test_a_bounce_whose_boundaries_never_close_is_still_read() -> None:
    # mail-parser 4.8 raises AttributeError on this DSN (an inner boundary never starts, the
    # outer one never closes); the one walk reads its text and records both defects.
    # Origin: sisimai/set-of-emails maildir/bsd/lhost-sendgrid-01.eml, BSD-2-Clause.
    msg = parse_message((DATA / "sisimai-lhost-sendgrid-01.eml").read_bytes())
    assert msg.subject == "Undelivered Mail Returned to Sender"
    assert msg.content_type == "multipart/report"
    assert "message/delivery-status" in msg.part_types
    assert "This is an automatically generated message from SendGrid." in msg.text_body
    assert {"CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect"} <= set(msg.defects)


def test_oversize_message_reads_only_the_header_block() -> None:
    attachment = base64.encodebytes(b"\x00" * 4000).decode()
    raw = mail(
        "From: Rita Reporter <rita@reporter.example>",
        "Subject: huge PoC",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body="--b\nContent-Type: text/plain\n\nsecret words\n--b\n"
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        f"{attachment}--b--\n",
    )
    msg = parse_message(raw, max_bytes=1024)
    assert "oversize" in msg.defects
    assert msg.sender == Address(name="Rita Reporter", addr="rita@reporter.example")
    assert msg.subject == "huge PoC"
    assert msg.text_body == ""
    assert msg.attachments == ()
    assert msg.raw_size == len(raw)
    assert not msg.unparseable


def test_binary_junk_is_unparseable_and_quick() -> None:
    junk = bytes(range(256)) * 4096  # 1 MB, NULs included
    elapsed, msg = timed(junk)
    assert elapsed < QUICK
    assert msg.unparseable
    assert "no header block" in msg.defects
    assert msg.text_body == ""
    assert msg.sender is None


def test_binary_junk_delivered_with_trace_fields_is_still_unparseable() -> None:
    # Dovecot's LMTP adds Return-Path and Delivered-To to whatever it stores.
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 64
    msg = parse_message(
        b"Return-Path: <x@y.example>\nDelivered-To: security@example.test\n"
        b"Received: from mx by mx; Mon, 2 Nov 2026 10:00:00 +0000\n" + junk
    )
    assert msg.unparseable
    assert "only the fields mail servers add: not a message" in msg.defects
    assert msg.text_body == ""


def test_outlook_msg_file_is_unparseable() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2000
    msg = parse_message(ole2)
    assert msg.unparseable
    assert msg.text_body == ""


def test_empty_input_is_unparseable() -> None:
    msg = parse_message(b"")
    assert msg.unparseable
    assert msg.raw_size == 0


def test_megabyte_header_line_comes_back_quickly() -> None:
    raw = mail("From: rita@reporter.example", "Subject: " + "x" * 1_000_000)
    elapsed, msg = timed(raw)
    assert elapsed < QUICK
    assert msg.sender == Address(name="", addr="rita@reporter.example")
    assert len(msg.subject) == MAX_HEADER_VALUE
    assert f"a header field over {MAX_HEADER_VALUE} characters: cut" in msg.defects


def test_megabyte_address_header_comes_back_quickly() -> None:
    addresses = ", ".join(f"user{i}@example.test" for i in range(40_000))  # under 1 MiB
    elapsed, msg = timed(mail("From: rita@reporter.example", f"To: {addresses}"))
    assert elapsed < QUICK
    assert 0 < len(msg.to) < 40_000
    assert msg.to[0].addr == "user0@example.test"


def test_thousands_of_nested_messages_come_back_quickly() -> None:
    raw = b"From: innermost@x.example\nSubject: innermost\n\nhello\n"
    for level in range(2000):
        raw = (
            f"From: level{level}@x.example\nSubject: level {level}\n"
            "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
        ).encode() + raw
    elapsed, msg = timed(raw)
    assert elapsed < QUICK
    assert msg.subject == "level 1999"
    assert msg.sender == Address(name="", addr="level1999@x.example")
    assert any("nesting" in d for d in msg.defects)


def test_deeply_nested_multiparts_over_many_lines_are_not_parsed() -> None:
    inner = "Content-Type: text/plain\n\n" + "line\n" * 100_000
    for level in range(300):
        inner = (
            f"Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n"
            f"{inner}\n--b{level}--\n"
        )
    elapsed, msg = timed(mail("From: rita@reporter.example", "MIME-Version: 1.0", body=inner))
    assert elapsed < QUICK
    assert any("multipart nesting too deep" in d for d in msg.defects)
    assert msg.sender is not None


def test_ten_thousand_mime_parts_come_back_quickly() -> None:
    parts = "".join(f"--XX\nContent-Type: text/plain\n\npart {i}\n" for i in range(10_000))
    raw = mail(
        "From: rita@reporter.example",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=XX",
        body=parts + "--XX--\n",
    )
    elapsed, msg = timed(raw)
    assert elapsed < QUICK
    assert len(msg.part_types) == MAX_PARTS
    assert any(f"over {MAX_PARTS} MIME parts" in d for d in msg.defects)
    assert msg.text_body.startswith("part 0")


def test_content_type_with_thousands_of_parameters_is_cut() -> None:
    params = "; ".join(f'p{i}="a;b"' for i in range(20_000))
    raw = mail("From: rita@reporter.example", f"Content-Type: text/plain; {params}")
    elapsed, msg = timed(raw)
    assert elapsed < QUICK
    assert "ParametersTruncatedDefect" in msg.defects
    assert msg.text_body == "Hello.\n"


def test_hundreds_of_thousands_of_header_fields_are_cut() -> None:
    raw = mail("From: rita@reporter.example", *(["a: b"] * 300_000))
    elapsed, msg = timed(raw)
    assert elapsed < QUICK
    assert msg.sender is not None
    assert any("the rest of the message not read" in d for d in msg.defects)


def test_cr_only_line_endings_are_read() -> None:
    raw = plain().replace(b"\n", b"\r")
    msg = parse_message(raw)
    assert msg.subject == "XSS in the login form"
    assert msg.text_body == "The next parameter reflects.\n"


# ---------------------------------------------------------------------------------------------
# header_block_sender


def test_header_block_sender_reads_the_from_of_an_oversize_message() -> None:
    raw = plain() + b"x" * 10_000
    assert header_block_sender(raw) == Address(name="Rita Reporter", addr="rita@reporter.example")


def test_header_block_sender_is_none_when_ambiguous_or_absent() -> None:
    assert header_block_sender(plain(From="a@example.test, b@example.test")) is None
    assert header_block_sender(b"\x00\x01 not mail at all") is None
    assert header_block_sender(b"") is None


# ---------------------------------------------------------------------------------------------
# dedupe_key

TRACE = (
    b"Return-Path: <rita@reporter.example>\n"
    b"Delivered-To: security@example.test\n"
    b"X-Original-To: security@example.test\n"
    b"Received: from mx.reporter.example (mx.reporter.example [192.0.2.1])\n"
    b"\tby mx.example.test (Postfix) with ESMTPS id 4F3;\n"
    b"\tMon, 02 Nov 2026 10:15:01 +0100 (CET)\n"
    b"Authentication-Results: mx.example.test; dkim=pass header.d=reporter.example\n"
    b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.test; b=abc\n"
    b"X-Spam-Status: No, score=-0.1\n"
    b"X-Virus-Scanned: clamav\n"
)


def test_dedupe_key_is_the_hex_sha256_of_the_message_without_trace_fields() -> None:
    raw = plain()
    assert dedupe_key(raw) == hashlib.sha256(raw).hexdigest()
    assert dedupe_key(TRACE + raw) == dedupe_key(raw)


def test_a_copy_delivered_twice_has_one_dedupe_key() -> None:
    first = TRACE + plain()
    second = TRACE.replace(b"4F3", b"9A7").replace(b"10:15:01", b"10:19:44") + plain()
    assert dedupe_key(first) == dedupe_key(second)


def test_two_messages_that_reuse_a_message_id_have_two_dedupe_keys() -> None:
    one = plain()
    other = plain().replace(b"reflects", b"redirects")
    assert dedupe_key(one) != dedupe_key(other)


def test_dedupe_key_keeps_sender_written_fields_such_as_dkim_signature() -> None:
    signed = b"DKIM-Signature: v=1; d=reporter.example; b=AAA\n" + plain()
    resigned = b"DKIM-Signature: v=1; d=reporter.example; b=BBB\n" + plain()
    assert dedupe_key(signed) != dedupe_key(resigned)
    assert dedupe_key(signed) != dedupe_key(plain())


def test_dedupe_key_ignores_an_mbox_from_line() -> None:
    raw = plain()
    assert dedupe_key(b"From rita@reporter.example Mon Nov  2 10:15:00 2026\n" + raw) == (
        dedupe_key(raw)
    )


def test_dedupe_key_sees_trace_looking_text_in_the_body() -> None:
    raw = plain()
    assert dedupe_key(raw + b"Received: by me\n") != dedupe_key(raw)


def test_dedupe_key_of_a_huge_header_block_is_quick() -> None:
    raw = b"From: rita@reporter.example\n" + b"Received: x\n" * 500_000 + b"\nbody\n"
    started = time.perf_counter()
    key = dedupe_key(raw)
    assert time.perf_counter() - started < QUICK
    assert len(key) == 64


def test_dedupe_key_never_raises_on_junk() -> None:
    for raw in (b"", b"\n", b"\r\r", b"From ", b"\x00" * 100, b":\n\n"):
        assert len(dedupe_key(raw)) == 64
