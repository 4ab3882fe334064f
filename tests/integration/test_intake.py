"""Intake end to end: real Dovecot (LMTP delivery, IMAP reading), a real SMTP sink, SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbot.app import App, CycleReport
from mailbot.cases.models import Case, InboundFailure, Message, Outbox
from tests import factories
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink


@pytest.fixture
def bot(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[App]:
    app = factories.app(
        factories.settings(tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings())
    )
    yield app
    app.close()


def deliver(account: ImapAccount, raw: bytes, sender: str = "rita@reporter.example") -> None:
    assert account.server is not None
    account.server.deliver(account, raw, sender=sender)


def run_once(app: App) -> CycleReport:
    return asyncio.run(app.run_once())


def cases(app: App) -> list[Case]:
    with app.db.session() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))


def count(app: App, model: Any) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_twenty_reports_become_twenty_cases_with_one_threaded_receipt_each(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    sent = {}
    for i in range(20):
        mid = f"<report-{i}@reporter.example>"
        deliver(
            imap_account,
            factories.message(
                sender=f"Reporter {i} <r{i}@reporter.example>", subject=f"Bug {i}", message_id=mid
            ),
        )
        sent[f"r{i}@reporter.example"] = mid

    report = run_once(bot)

    assert report.intake.opened == 20
    assert len(cases(bot)) == 20
    received = smtp_sink.wait_for(20)
    assert len(received) == 20
    by_recipient = {r.rcpt_tos[0]: r for r in received}
    assert set(by_recipient) == set(sent)
    case_by_reporter = {c.reporter: c.id for c in cases(bot)}
    for reporter, mail in by_recipient.items():
        assert mail.rcpt_tos == (reporter,)
        assert mail.mail_from == "<>"
        assert mail.message["In-Reply-To"] == sent[reporter]
        assert sent[reporter] in mail.message["References"]
        assert f"[{case_by_reporter[reporter]}]" in mail.message["Subject"]
        assert mail.message["Auto-Submitted"] == "auto-replied"

    again = run_once(bot)

    assert again.intake.opened == again.intake.added == 0
    assert len(cases(bot)) == 20
    assert count(bot, Outbox) == 20
    assert len(smtp_sink.received) == 20


AUTOMATIC: dict[str, dict[str, str | None]] = {
    "out-of-office": {"Auto-Submitted": "auto-replied", "Subject": None},
    "precedence-bulk": {"Precedence": "bulk"},
    "mailing-list": {
        "List-Id": "<announce.lists.example>",
        "List-Unsubscribe": "<mailto:leave@lists.example>",
    },
}


@pytest.mark.parametrize("kind", sorted(AUTOMATIC))
def test_automatic_mail_opens_a_flagged_case_without_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, kind: str
) -> None:
    headers = {k: v for k, v in AUTOMATIC[kind].items() if v is not None}
    deliver(imap_account, factories.message(subject=f"Re: {kind}", headers=headers))

    run_once(bot)

    [case] = cases(bot)
    assert "automatic" in case.flags
    assert case.ack_due is None
    assert count(bot, Outbox) == 0
    assert smtp_sink.received == []


def test_delivery_status_notification_gets_no_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    dsn = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.reporter.example>\r\n"
        b"To: security@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-1@mx.reporter.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.reporter.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
    )
    deliver(imap_account, dsn, sender="")

    run_once(bot)

    [case] = cases(bot)
    assert "automatic" in case.flags
    assert smtp_sink.received == []


def test_mail_from_our_own_address_gets_no_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    deliver(
        imap_account,
        factories.message(
            sender=bot.settings.smtp.from_address, subject="a copy of something we sent"
        ),
    )

    run_once(bot)

    [case] = cases(bot)
    assert "own-mail" in case.flags
    assert smtp_sink.received == []


def test_auto_submitted_no_still_gets_a_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    deliver(imap_account, factories.message(headers={"Auto-Submitted": "no"}))

    run_once(bot)

    [case] = cases(bot)
    assert "automatic" not in case.flags
    assert len(smtp_sink.wait_for(1)) == 1


@pytest.mark.parametrize("message_id", ["<same@reporter.example>", None])
def test_the_same_message_delivered_twice_is_one_case(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, message_id: str | None
) -> None:
    raw = factories.message(message_id=message_id)
    deliver(imap_account, raw)
    deliver(imap_account, raw)

    report = run_once(bot)

    # A clean duplicate: seen before, so nothing at all happens; not a failure of the database's
    # unique key that would be retried, quarantined and alerted on.
    assert (report.intake.opened, report.intake.duplicates) == (1, 1)
    assert (report.intake.failed, report.intake.quarantined) == (0, 0)
    assert count(bot, InboundFailure) == 0
    assert len(cases(bot)) == 1
    assert count(bot, Message) == 2  # the report and our receipt
    assert count(bot, Outbox) == 1  # the receipt; no alert
    assert len(smtp_sink.wait_for(1)) == 1


def test_two_different_messages_reusing_a_message_id_are_two_cases(
    bot: App, imap_account: ImapAccount
) -> None:
    deliver(imap_account, factories.message(message_id="<reused@x>", body="first\n"))
    deliver(
        imap_account,
        factories.message(
            message_id="<reused@x>", body="second\n", sender="other@reporter.example"
        ),
    )

    run_once(bot)

    assert len(cases(bot)) == 2


def test_injected_headers_and_a_ccd_stranger_never_reach_the_receipt(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    raw = (
        b"From: Rita <rita@reporter.example>\r\n"
        b"To: security@example.test\r\n"
        b"Cc: stranger@elsewhere.example\r\n"
        b"Reply-To: attacker@elsewhere.example\r\n"
        b"Subject: =?utf-8?q?hello=0D=0ABcc=3A_victim=40elsewhere=2Eexample?=\r\n"
        b"Message-ID: <inject-1@reporter.example>\r\n"
        b"Content-Type: text/plain\r\n\r\nSecret details of the bug.\r\n"
    )
    deliver(imap_account, raw)

    run_once(bot)

    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ("rita@reporter.example",)
    names = [k.lower() for k in message_from_bytes(mail.data, policy=default_policy)]
    assert "bcc" not in names
    assert "cc" not in names
    assert "Secret details" not in mail.data.decode("utf-8", "replace")


def test_receipts_wait_while_smtp_is_down_and_go_out_when_it_is_back(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    for i in range(3):
        deliver(imap_account, factories.message(sender=f"r{i}@reporter.example"))

    down = run_once(bot)

    assert down.intake.opened == 3
    assert down.outbox.sent == 0
    assert len(cases(bot)) == 3
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).where(Outbox.state == "queued")) == 3

    smtp_sink.start()
    back = run_once(bot)

    assert back.outbox.sent == 3
    assert {m.rcpt_tos[0] for m in smtp_sink.wait_for(3)} == {
        f"r{i}@reporter.example" for i in range(3)
    }


def test_a_message_that_breaks_intake_is_retried_then_quarantined_and_the_rest_go_on(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbot.intake import pipeline
    from mailbot.intake.classify import classify as real_classify

    def exploding_classify(msg: Any, folder: str, settings: Any, **signed: Any) -> Any:
        if "poison" in msg.subject:
            raise RuntimeError("boom")
        return real_classify(msg, folder, settings, **signed)

    monkeypatch.setattr(pipeline, "classify", exploding_classify)
    deliver(imap_account, factories.message(subject="poison"))
    deliver(imap_account, factories.message(subject="fine", sender="ok@reporter.example"))

    first = run_once(bot)
    assert (first.intake.opened, first.intake.failed) == (1, 1)
    run_once(bot)
    third = run_once(bot)
    assert third.intake.quarantined == 1

    assert [c.subject for c in cases(bot)] == ["fine"]
    with bot.db.session() as s:
        alerts = list(s.scalars(select(Outbox).where(Outbox.kind == "alert")))
    assert len(alerts) == 1
    assert alerts[0].recipients == ["oncall@team.example.test"]
    fourth = run_once(bot)
    assert fourth.intake.failed == fourth.intake.quarantined == 0


def test_a_message_that_fails_once_and_then_works_is_forgotten_as_a_failure(
    bot: App, imap_account: ImapAccount, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbot.intake import pipeline
    from mailbot.intake.classify import classify as real_classify

    failures = iter([RuntimeError("a passing hiccup")])

    def classify_failing_once(msg: Any, folder: str, settings: Any, **signed: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return real_classify(msg, folder, settings, **signed)

    monkeypatch.setattr(pipeline, "classify", classify_failing_once)
    deliver(imap_account, factories.message(subject="flaky"))

    first = run_once(bot)
    assert (first.intake.opened, first.intake.failed) == (0, 1)
    assert count(bot, InboundFailure) == 1
    second = run_once(bot)
    assert (second.intake.opened, second.intake.failed) == (1, 0)

    # Done with: no failure left on record, and the next pass does not fetch it again.
    assert count(bot, InboundFailure) == 0
    third = run_once(bot)
    assert third.intake.processed == 0
    assert [c.subject for c in cases(bot)] == ["flaky"]


def test_our_own_mail_in_a_team_domain_is_not_an_unauthenticated_team_claim(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    own = "Security <security@team.example.test>"
    app = factories.app(factories.settings(
        tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings(from_address=own)))
    deliver(imap_account, factories.message(sender=own, subject="a copy of what we sent"))

    run_once(app)

    [case] = cases(app)
    assert "own-mail" in case.flags
    assert "unauthenticated-team" not in case.flags
    app.close()
