"""Size and SHA-256 of a forwarded message sent as an attachment (message/rfc822)."""

from __future__ import annotations

import hashlib
from email import message_from_bytes, policy

from mailbot.mail.parse import MAX_DEPTH, parse_message

FORWARDED = (
    b"From: Rita Reporter <rita@reporter.example>\n"
    b"Subject: Fwd: look at this\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=outer\n\n"
    b"--outer\nContent-Type: text/plain\n\nSee the attached.\n"
    b"--outer\nContent-Type: message/rfc822\n"
    b'Content-Disposition: attachment; filename="fwd.eml"\n\n'
)


def _forwarding(enclosed: bytes) -> bytes:
    return FORWARDED + enclosed + b"\n--outer--\n"


def _nested(levels: int) -> bytes:
    raw = b"From: innermost@x.example\nSubject: innermost\n\nhello\n"
    for level in range(levels):
        raw = (
            f"From: level{level}@x.example\nSubject: level {level}\n"
            "MIME-Version: 1.0\nContent-Type: message/rfc822\n\n"
        ).encode() + raw
    return raw


def test_a_forwarded_message_is_hashed_as_the_generator_writes_it() -> None:
    enclosed = b"From: someone@x.example\nSubject: original\n\nThe original text.\n"
    (attachment,) = parse_message(_forwarding(enclosed)).attachments
    tree = message_from_bytes(_forwarding(enclosed), policy=policy.compat32)
    written = tree.get_payload()[1].get_payload()[0].as_bytes()  # type: ignore[index, union-attr]
    assert (attachment.filename, attachment.content_type) == ("fwd.eml", "message/rfc822")
    assert attachment.size == len(written)
    assert attachment.sha256 == hashlib.sha256(written).hexdigest()


def test_a_forwarded_message_nested_too_deep_is_hashed_from_its_stored_text() -> None:
    msg = parse_message(_forwarding(_nested(MAX_DEPTH + 10)))
    (attachment,) = msg.attachments
    assert attachment.filename == "fwd.eml"
    assert attachment.size > len(_nested(MAX_DEPTH + 10)) // 2
    assert attachment.sha256 != hashlib.sha256(b"").hexdigest()
    assert any("its size and sha256 are of its stored" in d for d in msg.defects)


def test_the_stored_text_digest_tells_different_deep_messages_apart() -> None:
    first = parse_message(_forwarding(_nested(MAX_DEPTH + 10))).attachments[0]
    second = parse_message(_forwarding(_nested(MAX_DEPTH + 10).replace(b"hello", b"hullo")))
    assert second.attachments[0].sha256 != first.sha256
    assert second.attachments[0].size == first.size
