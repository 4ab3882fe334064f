"""Hostile input end to end: real Dovecot (LMTP delivery, IMAP reading), a real SMTP sink, SQLite.

Every test names one threat to a bot that answers a security mailbox unattended for months:
automatic mail and mail loops (RFC 3834), floods, header injection, address confusion, the
"Ticket Trick", messages built to exhaust the parser, and attachment names built to escape a
directory. Each delivers the way an MTA does (LMTP), lets mailbot run, and then looks at what
mailbot recorded and at every byte that reached the SMTP server.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Iterator
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
class Rfc3834Run:
    bot: App
    sink: SmtpSink


@pytest.fixture(scope="module")
def rfc3834_run(
    dovecot_server: ImapTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rfc3834Run]:
    account = dovecot_server.add_user()
    sink = SmtpSink()
    sink.start()
    tmp = tmp_path_factory.mktemp("rfc3834")
    app = make_bot(tmp, account, sink, FixedClock(datetime.now(UTC)))
    try:
        for name, variant in {**AUTOMATIC, **CONTROLS}.items():
            sender = variant_sender(name, variant)
            raw = report(
                sender,
                f"Re: {name}",
                *variant.fields,
                message_id=variant_id(name),
                body=variant.body,
            )
            envelope = variant.envelope
            if envelope is None:
                envelope = sender.rpartition("<")[2].rstrip(">")
            deliver(account, raw, sender=envelope)
        run_once(app)
        sink.wait_for(len(CONTROLS))
        time.sleep(0.2)  # anything unexpected would arrive now
        yield Rfc3834Run(app, sink)
    finally:
        app.close()
        sink.stop()


@pytest.mark.parametrize("name", sorted(AUTOMATIC))
def test_rfc3834_automatic_mail_is_recorded_flagged_and_never_answered(
    rfc3834_run: Rfc3834Run, name: str
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
    answered = {r.rcpt_tos for r in rfc3834_run.sink.received}
    assert (variant_sender(name, variant).rpartition("<")[2].rstrip(">").lower(),) not in answered
    assert not [o for o in outbox(rfc3834_run.bot) if o.case_id == case.id]


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_rfc3834_ordinary_mail_in_the_same_pass_is_answered_once(
    rfc3834_run: Rfc3834Run, name: str
) -> None:
    case, _ = inbound(rfc3834_run.bot, variant_id(name))

    assert "automatic" not in case.flags
    mine = [r for r in rfc3834_run.sink.received if r.rcpt_tos == (case.reporter,)]
    assert len(mine) == 1
    assert mine[0].mail_from == "<>"


def test_rfc3834_only_the_controls_were_answered(rfc3834_run: Rfc3834Run) -> None:
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
    time.sleep(0.2)
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
        time.sleep(0.2)
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
    time.sleep(0.2)
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
