"""Which case a message joins (docs/design.md, "Threading"), against real Dovecot and SMTP.

1. In-Reply-To / References naming a Message-ID stored on a case, or one of our own Message-IDs
   whose token verifies; 2. a case tag in the subject, from a participant only; 3. else a new case.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from mailbot.cases.models import Message
from mailbot.mail.compose import make_message_id
from tests import mailflow
from tests.mailflow import REPORTER, STRANGER, Mailflow, new_message_id, raw
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

RITA = f"Rita Reporter <{REPORTER}>"


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def follow_up(
    *headers: tuple[str, str],
    sender: str = RITA,
    subject: str = "Re: your mail",
    body: str = "One more detail.\n",
) -> bytes:
    return raw([("From", sender), ("To", mailflow.SECURITY), ("Subject", subject), *headers], body)


def test_a_reply_to_our_receipt_with_only_in_reply_to_joins_the_case(flow: Mailflow) -> None:
    case, _ = flow.open_report()
    flow.deliver(follow_up(("In-Reply-To", flow.receipt_id(case.id))))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (0, 1)
    [_, reply] = flow.inbound(case.id)
    assert reply.kind == "follow-up"
    assert reply.details["correlation"] == f"references {flow.receipt_id(case.id)}"


def test_a_reply_with_only_references_to_the_report_joins_the_case(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    flow.deliver(follow_up(("References", f"{new_message_id()} {report_id}")))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (0, 1)
    assert len(flow.inbound(case.id)) == 2


def test_the_message_answered_decides_over_the_older_references(flow: Mailflow) -> None:
    # Rita's second report; her reply to its receipt still carries her first thread in
    # References. The message it answers (In-Reply-To), then the newest reference, decide.
    first, first_id = flow.open_report()
    second, second_id = flow.open_report(subject="A second bug")
    older = f"{first_id} {flow.receipt_id(first.id)}"
    flow.deliver(follow_up(("In-Reply-To", flow.receipt_id(second.id)),
                           ("References", f"{older} {second_id}")))
    flow.deliver(follow_up(("References", f"{older} {second_id} {new_message_id()}")))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (0, 2)
    assert len(flow.inbound(first.id)) == 1
    assert len(flow.inbound(second.id)) == 3


def test_a_tagged_message_from_the_reporter_joins_the_case(flow: Mailflow) -> None:
    case, _ = flow.open_report()
    flow.deliver(follow_up(subject=f"More about [{case.id}]", sender="RITA@Reporter.Example"))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (0, 1)
    [_, tagged] = flow.inbound(case.id)
    assert "from the case's reporter" in tagged.details["correlation"]


def test_a_tagged_message_from_a_stranger_opens_a_new_case_that_notes_the_tag(
    flow: Mailflow,
) -> None:
    case, _ = flow.open_report()
    flow.deliver(follow_up(subject=f"Re: [{case.id}] what did Rita tell you?", sender=STRANGER))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (1, 0)
    assert len(flow.inbound(case.id)) == 1
    [_, new] = flow.cases()
    assert new.reporter == STRANGER
    assert new.mentioned_tag == case.id
    assert flow.events(new.id)[0].detail["mentioned_tag"] == case.id
    # The stranger's own new case answers the stranger, and only about that case.
    [_, receipt] = flow.mailed(2)
    assert receipt.rcpt_tos == (STRANGER,)
    assert f"[{new.id}]" in receipt.message["Subject"]
    assert case.id not in receipt.data.decode()


def test_a_reply_naming_our_message_id_joins_by_its_token_when_the_stored_row_is_gone(
    flow: Mailflow,
) -> None:
    case, _ = flow.open_report()
    receipt_id = flow.receipt_id(case.id)
    with flow.app.db.session() as s:
        s.execute(delete(Message).where(Message.message_id == receipt_id))
    # Someone who is not a participant, so that neither sender nor tag could place it.
    flow.deliver(
        follow_up(
            ("References", receipt_id),
            sender="colleague@reporter.example",
            subject=f"Re: [{case.id}] forwarded to me",
        )
    )

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (0, 1)
    [reply] = flow.inbound(case.id)[1:]
    assert "token verified" in reply.details["correlation"]


def test_a_message_id_with_a_token_made_under_another_key_opens_a_new_case(
    flow: Mailflow,
) -> None:
    case, _ = flow.open_report()
    forged = make_message_id(case.id, "receipt", b"not-our-key", "example.test", "abc123")
    flow.deliver(follow_up(("In-Reply-To", forged), ("References", forged), sender=STRANGER))

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (1, 0)
    assert len(flow.inbound(case.id)) == 1


def test_a_thousand_entry_references_is_read_quickly_and_still_threads(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    chain = " ".join(f"<junk-{i}@nowhere.example>" for i in range(999))
    flow.deliver(follow_up(("References", f"{chain} {report_id}")))

    started = time.monotonic()
    report = flow.run()

    assert time.monotonic() - started < 5
    assert report.intake.added == 1
    assert len(flow.inbound(case.id)) == 2


def test_a_message_that_references_itself_in_a_loop_opens_one_case_quickly(
    flow: Mailflow,
) -> None:
    own_id = new_message_id()
    loop = " ".join([own_id, "<other@reporter.example>"] * 500)
    flow.deliver(
        raw(
            [
                ("From", RITA),
                ("To", mailflow.SECURITY),
                ("Subject", "loop"),
                ("In-Reply-To", own_id),
                ("References", loop),
            ],
            message_id=own_id,
        )
    )

    started = time.monotonic()
    report = flow.run()

    assert time.monotonic() - started < 5
    assert report.intake.opened == 1
    # And a reply to it threads onto that case like any other.
    [case] = flow.cases()
    flow.deliver(follow_up(("In-Reply-To", own_id), ("References", loop)))
    assert flow.run().intake.added == 1
    assert len(flow.inbound(case.id)) == 2


def forwarded(*, inner: list[tuple[str, str]], sender: str, subject: str) -> bytes:
    """A new message from ``sender`` that carries another message as a message/rfc822 part."""
    inner_bytes = "".join(f"{k}: {v}\r\n" for k, v in inner) + "\r\nThe original text.\r\n"
    return (
        f"From: {sender}\r\nTo: {mailflow.SECURITY}\r\nSubject: {subject}\r\n"
        f"Message-ID: {new_message_id('forwarder.example')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="fwd"\r\n\r\n'
        "--fwd\r\nContent-Type: text/plain\r\n\r\nHave a look at this.\r\n"
        "--fwd\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{inner_bytes}"
        "--fwd--\r\n"
    ).encode()


def test_a_forwarded_message_whose_inner_headers_name_a_case_does_not_thread(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    receipt_id = flow.receipt_id(case.id)
    flow.deliver(
        forwarded(
            sender="Fred <fred@forwarder.example>",
            subject="Fwd: found this",
            inner=[
                ("From", RITA),
                ("To", mailflow.SECURITY),
                ("Cc", "victim@elsewhere.example"),
                ("Subject", f"Re: [{case.id}] XSS"),
                ("Message-ID", new_message_id()),
                ("In-Reply-To", receipt_id),
                ("References", f"{report_id} {receipt_id}"),
            ],
        ),
        envelope_from="fred@forwarder.example",
    )

    report = flow.run()

    assert (report.intake.opened, report.intake.added) == (1, 0)
    assert len(flow.inbound(case.id)) == 1
    [_, new] = flow.cases()
    assert new.reporter == "fred@forwarder.example"
    # Nobody named inside the forwarded message hears from us; Fred gets his own receipt.
    assert [m.rcpt_tos for m in flow.mailed(2)] == [(REPORTER,), ("fred@forwarder.example",)]


def test_a_follow_up_from_the_reporter_gets_no_second_receipt_and_its_cc_gets_nothing(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    flow.deliver(
        follow_up(
            ("In-Reply-To", report_id),
            ("Cc", "boss@reporter.example"),
            ("Reply-To", "attacker@evil.example"),
            subject=f"Re: [{case.id}] XSS in the login form",
        )
    )

    flow.run()

    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]
    assert len(flow.outbox()) == 1
    assert "no-receipt" not in flow.actions(case.id)  # joining a case is not a refused receipt


def test_a_reply_naming_a_reused_message_id_joins_the_case_that_had_it_first(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    # Someone else's message that reuses the report's Message-ID is a different message: it
    # opens its own case, but must not capture the report's thread.
    flow.deliver(
        raw(
            [("From", STRANGER), ("To", mailflow.SECURITY), ("Subject", "copycat")],
            "Not Rita's report.\n",
            message_id=report_id,
        )
    )
    flow.run()
    assert len(flow.cases()) == 2

    flow.deliver(follow_up(("In-Reply-To", report_id)))
    flow.run()

    assert len(flow.inbound(case.id)) == 2
