"""The reporter's notice when the team resolves or closes their case, on the real servers.

Through the outbox like a receipt: once, threaded under the report, null envelope sender, never
to automatic mail, encrypted when mailbot holds the reporter's key; ``quiet`` sends none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from tests import factories, mailflow
from tests.integration.test_commands import (
    cli,  # noqa: F401  (a fixture)
    send_commands,
)
from tests.mailflow import REPORTER, Mailflow
from tests.pgpkeys import Home
from tests.pgpmail import TEAM, Keys, Person, inner_text, pgp_mime, pgp_settings
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import ReceivedMail, SmtpSink


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def notices(flow: Mailflow) -> list[ReceivedMail]:
    return [m for m in flow.sink.received
            if m.rcpt_tos == (REPORTER,) and "Re: your security report [" in
            str(m.message["Subject"]) and str(m.message["Subject"]).endswith(
                ("resolved", "closed"))]


def text(mail: ReceivedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def test_resolve_tells_the_reporter_once_threaded_with_cve_and_disclosure_date(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/cve CVE-2026-4242\n/disclose 2027-01-15\n/resolve\n")
    flow.run()
    flow.run()  # nothing new: still one notice

    [notice] = notices(flow)
    assert notice.mail_from == "<>"  # like a receipt: a bounce never loops back
    assert notice.message["In-Reply-To"] == report_id
    assert report_id in str(notice.message["References"])
    assert case.id in str(notice.message["Subject"])
    assert notice.message["Auto-Submitted"] == "auto-generated"
    body = text(notice)
    assert "marked case" in body and "resolved" in body
    assert "CVE-2026-4242" in body and "2027-01-15" in body
    assert "The login form" not in body  # never the report itself
    [row] = [m for m in flow.messages(case.id) if m.kind == "notice"]
    assert row.direction == "out" and row.to_addrs == [REPORTER]


def test_close_as_invalid_says_so_without_the_cve(flow: Mailflow) -> None:
    _case, report_id = flow.open_report()
    send_commands(flow, report_id, "/cve CVE-2026-4243\n/close invalid\n")
    [notice] = notices(flow)
    assert "not a vulnerability" in text(notice) and "CVE-2026-4243" not in text(notice)


def test_quiet_sends_no_notice(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/close spam quiet\n")
    assert flow.case(case.id).status == "closed"
    assert flow.case(case.id).close_reason == "spam"
    flow.run()
    assert notices(flow) == []
    assert len(flow.sink.received) == 1  # the receipt


def test_the_cli_tells_the_reporter_unless_quiet(
    flow: Mailflow, cli: Any  # noqa: F811
) -> None:
    first, _ = flow.open_report()
    second, _ = flow.open_report(subject="Another bug")
    assert cli("cases", "resolve", first.id, "--quiet")[0] == 0
    assert cli("cases", "close", second.id, "fixed")[0] == 0
    flow.run()  # the daemon's next cycle sends what the CLI queued
    [notice] = notices(flow)
    assert second.id in str(notice.message["Subject"])
    assert "closed" in str(notice.message["Subject"])


def test_no_notice_for_automatic_mail(flow: Mailflow) -> None:
    case, _ = flow.open_report(headers={"Auto-Submitted": "auto-replied"})
    assert flow.case(case.id).ack_due is None
    [own] = flow.inbound(case.id)
    send_commands(flow, own.message_id, "/close spam\n")
    assert flow.case(case.id).status == "closed"
    assert flow.sink.received == []
    assert "no-notice" in flow.actions(case.id)


def test_the_notice_is_encrypted_to_a_reporter_whose_key_mailbot_holds(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, team_home: Home,
    pgp_keys: Keys, people: dict[str, Person],
) -> None:
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings())
    settings = dataclasses.replace(settings, pgp=pgp_settings(team_home, pgp_keys))
    flow = Mailflow(factories.app(settings), imap_account, smtp_sink)
    try:
        rita = people[REPORTER]
        inner = inner_text("Secret details.\n", subject="Bug", key=rita.public())
        report_id = make_msgid(domain="reporter.example")
        headers = [("From", f"Rita <{REPORTER}>"), ("To", TEAM), ("Subject", "..."),
                   ("Date", format_datetime(datetime.now(UTC))), ("Message-ID", report_id)]
        flow.deliver(pgp_mime(headers, rita.home.encrypt(inner, to=pgp_keys.team_fpr)),
                     envelope_from=REPORTER)
        flow.run()
        [case] = flow.cases()
        send_commands(flow, report_id, "/resolve\n")
        [_receipt, notice] = flow.mailed(2)
        assert notice.message.get_content_type() == "multipart/encrypted"
        assert notice.message["In-Reply-To"] == report_id
        armored = list(notice.message.iter_parts())[1].get_payload(decode=True)
        assert isinstance(armored, bytes)
        clear, status = rita.home.status("--decrypt", data=armored)
        assert "GOODSIG" in status and b"resolved" in clear and case.id.encode() in clear
    finally:
        flow.app.close()
