"""One mailbot on the real test servers, with the words the threading and trust tests speak.

``Mailflow`` delivers mail the way an MTA does (LMTP into INBOX), files the team's replies the way
their mail client does (IMAP APPEND to Sent), runs one cycle and reads back cases, messages,
events and what the SMTP sink received. ``raw`` builds a message byte for byte, so a test can
write header fields that the email package would refuse or rewrite (two From fields, a display
name that spells an address).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mailbot.app import App, CycleReport
from mailbot.cases.models import Case, Event, Message, Outbox
from tests import factories
from tests.servers.dovecot import SENT, ImapAccount
from tests.servers.smtp_sink import ReceivedMail, SmtpSink

REPORTER = "rita@reporter.example"
TEAM_MEMBER = "alice@team.example.test"
SECURITY = "security@example.test"  # the mailbox itself, smtp.from in the test settings
STRANGER = "mallory@evil.example"
PASS = (
    f"{factories.AUTHSERV_ID}; spf=pass smtp.mailfrom={factories.TEAM_DOMAIN}; "
    f"dkim=pass header.d={factories.TEAM_DOMAIN}; dmarc=pass header.from={factories.TEAM_DOMAIN}"
)

_ids = itertools.count(1)


def new_message_id(domain: str = "reporter.example") -> str:
    return f"<flow-{next(_ids)}@{domain}>"


def raw(
    headers: list[tuple[str, str]],
    body: str = "Hello.\n",
    *,
    message_id: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """A text/plain message with exactly these header fields (plus Date unless given,
    Message-ID, MIME)."""
    fields = list(headers)
    if not any(name.lower() == "date" for name, _ in headers):
        fields.append(("Date", format_datetime(date or datetime.now(UTC))))
    fields.append(("Message-ID", message_id or new_message_id()))
    fields += [("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8")]
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return (head + "\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def team_reply(
    *,
    answering: str,
    body: str = "Thank you, we are looking into it.\n",
    sender: str = f"Alice <{TEAM_MEMBER}>",
    to: str = REPORTER,
    cc: str | None = SECURITY,
    subject: str = "Re: XSS in the login form",
    authentication_results: str | None = PASS,
    message_id: str | None = None,
) -> bytes:
    """A team member's reply-all to ``answering``, authenticated by our MTA unless told not."""
    headers = []
    if authentication_results is not None:
        headers.append(("Authentication-Results", authentication_results))
    headers += [("From", sender), ("To", to)]
    if cc:
        headers.append(("Cc", cc))
    headers += [("Subject", subject), ("In-Reply-To", answering), ("References", answering)]
    return raw(headers, body, message_id=message_id or new_message_id("team.example.test"))


class Mailflow:
    def __init__(self, app: App, account: ImapAccount, sink: SmtpSink) -> None:
        self.app = app
        self.account = account
        self.sink = sink

    # -- mail in ------------------------------------------------------------------------------

    def deliver(self, message: bytes, envelope_from: str = REPORTER) -> None:
        assert self.account.server is not None
        self.account.server.deliver(self.account, message, sender=envelope_from)

    def file_in_sent(self, message: bytes) -> None:
        """What the team's mail client does with a reply sent from the shared mailbox."""
        assert self.account.server is not None
        self.account.server.append(self.account, SENT, message)

    def report(self, *, sender: str = f"Rita Reporter <{REPORTER}>", **kwargs: Any) -> str:
        """Deliver a new report; returns its Message-ID."""
        message_id = kwargs.pop("message_id", None) or new_message_id()
        self.deliver(factories.message(sender=sender, message_id=message_id, **kwargs))
        return message_id

    def run(self) -> CycleReport:
        return asyncio.run(self.app.run_once())

    def open_report(self, **kwargs: Any) -> tuple[Case, str]:
        """Deliver a report and run: the new case and the report's Message-ID."""
        before = {c.id for c in self.cases()}
        message_id = self.report(**kwargs)
        self.run()
        [case] = [c for c in self.cases() if c.id not in before]
        return case, message_id

    # -- what mailbot made of it --------------------------------------------------------------

    def cases(self) -> list[Case]:
        with self.app.db.session() as s:
            return list(s.scalars(select(Case).order_by(Case.id)))

    def case(self, case_id: str) -> Case:
        with self.app.db.session() as s:
            case = s.get(Case, case_id)
            assert case is not None, case_id
            return case

    def messages(self, case_id: str) -> list[Message]:
        with self.app.db.session() as s:
            return list(
                s.scalars(select(Message).where(Message.case_id == case_id).order_by(Message.id))
            )

    def inbound(self, case_id: str) -> list[Message]:
        return [m for m in self.messages(case_id) if m.direction == "in"]

    def events(self, case_id: str) -> list[Event]:
        with self.app.db.session() as s:
            return list(s.scalars(select(Event).where(Event.case_id == case_id).order_by(Event.id)))

    def actions(self, case_id: str) -> list[str]:
        return [e.action for e in self.events(case_id)]

    def receipt_id(self, case_id: str) -> str:
        [receipt] = [m for m in self.messages(case_id) if m.kind == "receipt"]
        return receipt.message_id

    def outbox(self) -> list[Outbox]:
        with self.app.db.session() as s:
            return list(s.scalars(select(Outbox).order_by(Outbox.id)))

    def mailed(self, expected: int) -> list[ReceivedMail]:
        """Everything the SMTP sink holds, once it holds ``expected`` messages, and no more."""
        received = self.sink.wait_for(expected) if expected else self.sink.received
        assert len(received) == expected, [r.rcpt_tos for r in received]
        return received


def running(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    """For a fixture: ``yield from running(tmp_path, imap_account, smtp_sink)``."""
    app = factories.app(
        factories.settings(tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings())
    )
    try:
        yield Mailflow(app, imap_account, smtp_sink)
    finally:
        app.close()
