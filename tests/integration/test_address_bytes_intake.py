"""Reports whose address fields carry raw bytes in the display name, end to end: real Dovecot
(LMTP delivery, IMAP reading), a real SMTP sink, SQLite.

A Shift_JIS or Big5 name (whose second bytes can be ``\\`` or ``@``), a NUL, a lone CR, a bidi
override, an encoded word holding a comma or raw ISO-2022-JP in front of the address once cost
the reporter: the case was flagged ``no-sender`` and nobody got a receipt. Each report here must
open a case with its reporter's address, and that address must get the receipt.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailbot.app import App
from mailbot.clock import FixedClock
from tests.integration.test_hostile_mail import (
    OWN,
    body_lines,
    bot,  # noqa: F401 (fixture)
    clock,  # noqa: F401 (fixture)
    deliver,
    events,
    inbound,
    mail,
    run_once,
)
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

# Display name bytes -> (the reporter's address, a word the shown name keeps).
SENDERS: dict[bytes, tuple[str, str]] = {
    b"=?utf-8?q?J=C3=BCrgen?= \x83\x5c\x83\x74\x83\x67": ("juergen@reporter.example", "Jürgen"),
    b'"\x83\x5c"': ("sjis@reporter.example", ""),
    b"\xa5\x5c\xa4\xe5 Lin": ("big5@reporter.example", "Lin"),
    b'"\x81\x40 Wang"': ("gbk@reporter.example", "Wang"),
    b"Nu\x00ll": ("nul@reporter.example", "Nu"),
    b'"Ann\rLee"': ("cr@reporter.example", "Ann Lee"),
    "\u202eRita".encode(): ("bidi@reporter.example", "Rita"),
    b"=?utf-8?q?Doe,_J=C3=BCrgen?=": ("comma@reporter.example", "Doe, Jürgen"),
    "ソフト株式会社".encode("iso2022_jp"): ("jis@reporter.example", "ソフト株式会社"),
}


def _report(name: bytes, addr: str, n: int) -> bytes:
    return mail(
        b"From: " + name + b" <" + addr.encode() + b">",
        f"To: {OWN}".encode(),
        b"Cc: \x83\x5c <cc@reporter.example>",
        b"Reply-To: " + name + b" <" + addr.encode() + b">",
        f"Subject: Report {n}".encode(),
        b"Date: Mon, 02 Nov 2026 10:15:00 +0100",
        f"Message-ID: <bytes-{n}@reporter.example>".encode(),
    )


@pytest.fixture
def delivered(bot: App, imap_account: ImapAccount) -> App:  # noqa: F811
    for n, (name, (addr, _)) in enumerate(SENDERS.items()):
        deliver(imap_account, _report(name, addr, n), sender=addr)
    return bot


def test_raw_bytes_in_a_display_name_never_cost_the_reporter(
    delivered: App, smtp_sink: SmtpSink, clock: FixedClock  # noqa: F811
) -> None:
    result = run_once(delivered)

    assert (result.intake.opened, result.intake.failed) == (len(SENDERS), 0)
    for n, (addr, word) in enumerate(SENDERS.values()):
        case, message = inbound(delivered, f"<bytes-{n}@reporter.example>")
        assert case.reporter == addr
        assert "no-sender" not in case.flags
        assert word in case.reporter_name
        assert "\u202e" not in case.reporter_name and "\x00" not in case.reporter_name
        assert message.from_addr == addr
        assert "cc@reporter.example" in message.to_addrs
        assert message.details["reply_to"] == [addr]
        assert [e.action for e in events(delivered, case.id) if e.action == "no-receipt"] == []
    received = smtp_sink.wait_for(len(SENDERS))
    assert sorted(r.rcpt_tos for r in received) == sorted((a,) for a, _ in SENDERS.values())
    words = dict(SENDERS.values())
    for sent in received:
        assert sent.message["Auto-Submitted"] == "auto-replied"
        assert [a.addr_spec for a in sent.message["To"].addresses] == list(sent.rcpt_tos)
        greeting = next(line for line in body_lines(sent) if line.startswith("Hello"))
        assert words[sent.rcpt_tos[0]] in greeting

    clock.advance(timedelta(minutes=5))
    run_once(delivered)  # nothing is answered twice
    assert len(smtp_sink.received) == len(SENDERS)
