"""The dedupe key survives export formats: one message read over IMAP, saved as .eml or exported
to an mbox (Python's mailbox module, formail-style quoting) has one key; two messages have two."""

from __future__ import annotations

import email
import mailbox
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail import canonical
from mailbot.mail.parse import dedupe_key
from tests.unit.test_corpus import FILES as CORPUS_FILES

QUICK = 5.0  # seconds; quadratic work on these shapes would take hours
DATA = Path(__file__).resolve().parents[1] / "data"

REPORT = (
    b"Return-Path: <rita@reporter.example>\r\n"
    b"Delivered-To: security@example.test\r\n"
    b"From: Rita Reporter <rita@reporter.example>\r\n"
    b"To: security@example.test\r\n"
    b"Subject: XSS in the login form\r\n"
    b"Date: Mon, 02 Nov 2026 10:15:00 +0100\r\n"
    b"Message-ID: <r1@reporter.example>\r\n"
    b"\r\n"
    b"The next parameter reflects.\r\n"
    b"\r\n"
    b"From the login page, type this:\r\n"
    b">From quoted by the reporter\r\n"
    b"\r\n"
)


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def mbox_copies(tmp_path: Path, raws: list[bytes], *, as_message: bool) -> list[bytes]:
    """Each message as Python's mailbox module writes it to an mbox and reads it back."""
    box = mailbox.mbox(tmp_path / ("m.mbox" if as_message else "b.mbox"))
    for raw in raws:
        box.add(mailbox.mboxMessage(email.message_from_bytes(raw)) if as_message else raw)
    box.flush()
    box.close()
    box = mailbox.mbox(tmp_path / ("m.mbox" if as_message else "b.mbox"), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def formail_style(raw: bytes) -> bytes:
    """A ``From `` separator, body lines that begin ``From `` quoted, a blank line after."""
    head, sep, body = lf(raw).partition(b"\n\n")
    quoted = b"\n".join(b">" + line if line.startswith(b"From ") else line
                        for line in body.split(b"\n"))
    return b"From rita@reporter.example  Mon Nov  2 10:15:00 2026\n" + head + sep + quoted + b"\n"


def test_line_endings_do_not_count() -> None:
    assert dedupe_key(lf(REPORT)) == dedupe_key(REPORT)


def test_trailing_whitespace_and_blank_lines_do_not_count() -> None:
    padded = REPORT.replace(b"reflects.\r\n", b"reflects.  \t\r\n") + b"\r\n\r\n  \r\n"
    assert dedupe_key(padded) == dedupe_key(REPORT)
    assert dedupe_key(REPORT.rstrip(b"\r\n")) == dedupe_key(REPORT)


def test_mbox_from_quoting_does_not_count() -> None:
    assert dedupe_key(formail_style(REPORT)) == dedupe_key(REPORT)
    mboxrd = REPORT.replace(b"\r\n>From quoted", b"\r\n>>From quoted")
    assert dedupe_key(mboxrd) == dedupe_key(REPORT)


def test_python_mailbox_exports_keep_the_key(tmp_path: Path) -> None:
    raws = [REPORT, *(p.read_bytes() for p in sorted(DATA.glob("*.eml")))]
    copies = mbox_copies(tmp_path, raws, as_message=False)
    assert [dedupe_key(c) for c in copies] == [dedupe_key(r) for r in raws]


def test_python_mailbox_exports_of_parsed_messages_keep_the_key(tmp_path: Path) -> None:
    # Through email.message objects the generator writes the message anew: a blank line before
    # a MIME boundary here and there. A message whose MIME is broken (the SendGrid bounce lacks
    # its closing boundary) is repaired on the way, and is another message then.
    raws = [REPORT, *(p.read_bytes() for p in sorted(DATA.glob("*.eml"))
                      if "sendgrid" not in p.name)]
    copies = mbox_copies(tmp_path, raws, as_message=True)
    assert [dedupe_key(c) for c in copies] == [dedupe_key(r) for r in raws]


def test_two_different_messages_still_have_two_keys() -> None:
    assert dedupe_key(REPORT.replace(b"reflects", b"redirects")) != dedupe_key(REPORT)
    assert dedupe_key(REPORT.replace(b"<r1@", b"<r2@")) != dedupe_key(REPORT)
    # Whitespace inside a line, and blank lines between paragraphs, are the sender's.
    assert dedupe_key(REPORT.replace(b"next parameter", b"next  parameter")) != dedupe_key(REPORT)
    assert dedupe_key(REPORT.replace(b"\r\n\r\nFrom the", b"\r\nFrom the")) != dedupe_key(REPORT)


def test_a_body_over_many_chunks_has_one_key_in_every_shape() -> None:
    body = b"".join(b"line %d of a long report  \n" % n for n in range(200_000))
    raw = b"From: rita@reporter.example\nSubject: big\n\n" + body + b"x" * (3 * canonical.CHUNK)
    assert len(raw) > 3 * canonical.CHUNK
    crlf = raw.replace(b"\n", b"\r\n")
    assert dedupe_key(crlf) == dedupe_key(raw)
    assert dedupe_key(raw[:-1] + b"y") != dedupe_key(raw)


@pytest.mark.parametrize("shape", [
    b" " * 2_000_000 + b"x\n",                 # blanks that do not end a line
    b" \n" * 1_000_000,                        # blanks that do, a million times
    b">" * 2_000_000 + b"From x\n",            # one deep quote
    b"\n>" * 1_000_000 + b"From x\n",          # a million quotes of nothing
    b"\n" * 2_000_000 + b"x\n--b\n",            # a long run of blank lines, then a boundary
    (b"\n" * 1000 + b"x") * 2000,               # many runs that no boundary follows
])
def test_the_canonical_form_of_hostile_shapes_is_quick(shape: bytes) -> None:
    raw = b"From: rita@reporter.example\n\n" + shape
    started = time.perf_counter()
    key = dedupe_key(raw)
    assert time.perf_counter() - started < QUICK
    assert key != dedupe_key(raw + b"!")


words = st.text(alphabet="abcdefghij .,>", min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=30))
def test_any_body_keeps_its_key_through_crlf_and_formail(lines: list[str]) -> None:
    body = "\n".join(lines).encode()
    raw = b"From: a@b.example\nSubject: s\n\n" + body + b"\n"
    assert dedupe_key(raw.replace(b"\n", b"\r\n")) == dedupe_key(raw)
    assert dedupe_key(formail_style(raw)) == dedupe_key(raw)


def test_corpus_messages_keep_their_key_through_an_mbox_and_crlf(tmp_path: Path) -> None:
    # Old Mac mail with bare CR line endings is left aside: an mbox adds an LF to it, which
    # moves where its header block ends.
    raws = [p.read_bytes() for p in CORPUS_FILES]
    raws = [r for r in raws if b"\n" in r]
    assert len(raws) > 100
    copies = mbox_copies(tmp_path, raws, as_message=False)
    assert [dedupe_key(c) for c in copies] == [dedupe_key(r) for r in raws]
    assert [dedupe_key(lf(r).replace(b"\n", b"\r\n")) for r in raws] == [dedupe_key(r)
                                                                         for r in raws]
    # Messages that share a key are copies: the corpus's bsd/ and dos/ copies of a message (LF
    # and CRLF), and a message copied with Authentication-Results added on top.
    first: dict[str, bytes] = {}
    for raw in raws:
        seen = first.setdefault(dedupe_key(raw), raw)
        assert lf(seen).partition(b"\n\n")[2] == lf(raw).partition(b"\n\n")[2]
