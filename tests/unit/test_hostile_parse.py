"""Pure parsing rules against hostile input: what a file that is not mail becomes once a server
has delivered it, and what becomes of attachment names built to escape a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.intake.classify import classify
from mailbot.mail.parse import parse_message
from tests import factories

# What Dovecot's LMTP (like any MTA) puts in front of whatever it is handed.
DELIVERY_TRACE = (
    b"Return-Path: <someone@reporter.example>\r\n"
    b"Delivered-To: security@example.test\r\n"
    b"Received: from mx.reporter.example ([192.0.2.1])\r\n"
    b"\tby mx.example.test with LMTP id 4F3 for <security@example.test>;\r\n"
    b"\tMon, 02 Nov 2026 10:15:01 +0100\r\n"
)
NOT_MAIL = {
    "elf-executable": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64,
    "zip-archive": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00\xff" * 2000,
    "png-image": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 1000,
    "outlook-msg": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2000,
    "nothing-at-all": b"",
}


@pytest.mark.parametrize("name", sorted(NOT_MAIL))
def test_a_binary_file_delivered_by_an_mta_is_unparseable_not_a_message(name: str) -> None:
    msg = parse_message(DELIVERY_TRACE + NOT_MAIL[name])

    assert msg.unparseable
    assert msg.sender is None
    assert "only the fields mail servers add: not a message" in msg.defects


def test_an_unparseable_delivery_is_flagged_and_promised_no_receipt(tmp_path: Path) -> None:
    settings = factories.settings(
        tmp_path,
        MailboxSettings(host="127.0.0.1", username="security@example.test"),
        SmtpSettings(host="127.0.0.1", from_address="security@example.test"),
    )
    facts = classify(parse_message(DELIVERY_TRACE + NOT_MAIL["elf-executable"]), "INBOX", settings)

    assert "unparseable" in facts.flags()
    assert facts.no_receipt_reason() == "unparseable"


def test_a_message_with_one_field_of_its_own_is_still_a_message() -> None:
    msg = parse_message(DELIVERY_TRACE + b"Subject: hi\r\n\r\nbody\r\n")

    assert not msg.unparseable
    assert msg.subject == "hi"


# ---------------------------------------------------------------------------------------------
# Attachment names: display text, never a path

HOSTILE_NAMES = {
    "parent-directories": (b'filename="../../etc/passwd"', ".._.._etc_passwd"),
    "absolute-path": (b'filename="/etc/cron.d/mailbot"', "_etc_cron.d_mailbot"),
    "windows-path": (b'filename="C:\\\\Windows\\\\evil.dll"', "C:_Windows_evil.dll"),
    "nul-byte": (b"filename*=utf-8''a%00b", "a b"),
    "line-breaks": (b"filename*=utf-8''a%0D%0AContent-Type%3A%20x", "a Content-Type: x"),
    "rtl-override": (b"filename*=utf-8''invoice%E2%80%AEfdp.exe", "invoice fdp.exe"),
    "encoded-word-slashes": (b'filename="=?utf-8?q?..=2F..=2Fetc=2Fshadow?="', ".._.._etc_shadow"),
    "escape-sequence": (b'filename="a\x1b[31mred"', "a [31mred"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_NAMES))
def test_attachment_filenames_with_separators_or_controls_are_cleaned(name: str) -> None:
    parameter, expected = HOSTILE_NAMES[name]
    raw = (
        b"From: rita@reporter.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; " + parameter + b"\r\n\r\nhello\r\n--b--\r\n"
    )

    [attachment] = parse_message(raw).attachments

    assert attachment.filename == expected
    assert attachment.filename.isprintable()
