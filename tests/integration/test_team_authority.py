"""The team's authority comes only from what the team wrote, and no header loses a report.

Real Dovecot, real SMTP sink. Each test is named after the break it closes: a reporter's text
passed on by the team (forwarded in any shape, quoted, enclosed) never runs as a command; a
header value never keeps a message from becoming a case; a command that cannot apply is a
recorded refusal, logged by its name only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.cases.models import InboundFailure
from tests import forwards, mailflow
from tests.mailflow import (
    REPORTER,
    SECURITY,
    TEAM_MEMBER,
    Mailflow,
    new_message_id,
    raw,
    team_reply,
)
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

FAR_FUTURE = "Fri, 31 Dec 9999 23:59:59 -1400"


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def assert_no_command_ran(flow: Mailflow, case_id: str) -> None:
    case = flow.case(case_id)
    assert (case.status, case.close_reason, case.credit) == ("new", None, None)
    actions = flow.actions(case_id)
    assert "command" not in actions and "command-refused" not in actions
    assert "closed" not in actions and "credit" not in actions


# ---------------------------------------------------------------------------------------------
# Break 1: a forwarded report runs the reporter's commands with the team's authority


@pytest.mark.parametrize("shape", sorted(forwards.SHAPES))
def test_a_forwarded_report_never_runs_the_reporters_commands_from_the_inbox(
    flow: Mailflow, shape: str
) -> None:
    case, report_id = flow.open_report()
    fwd_id = new_message_id("team.example.test")
    body = forwards.SHAPES[shape]()
    flow.deliver(forwards.forward(body, case_id=case.id, answering=report_id, message_id=fwd_id),
                 TEAM_MEMBER)

    flow.run()

    [_, stored] = flow.inbound(case.id)
    assert (stored.kind, stored.message_id) == ("team", fwd_id)  # trusted, and still obeyed nothing
    assert_no_command_ran(flow, case.id)


@pytest.mark.parametrize(
    "shape", ["attached, no note", "attached, html note", "nested twice", "gmail inline"]
)
def test_a_forwarded_report_never_runs_the_reporters_commands_from_the_sent_folder(
    flow: Mailflow, shape: str
) -> None:
    case, report_id = flow.open_report()
    body = forwards.SHAPES[shape]()
    flow.file_in_sent(forwards.forward(body, case_id=case.id, answering=report_id,
                                       sender=f"Example Security <{SECURITY}>",
                                       authentication_results=None))

    flow.run()

    [_, stored] = flow.inbound(case.id)
    assert (stored.kind, stored.folder) == ("team", "Sent")
    assert_no_command_ran(flow, case.id)


def test_the_teams_own_note_above_a_forward_still_commands(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    note = "Content-Type: text/html\r\n\r\n<p>/cve CVE-2026-12345</p><p>FYI, attached.</p>\r\n"
    body = forwards._mixed(note, forwards._enclosed())
    flow.deliver(forwards.forward(body, case_id=case.id, answering=report_id), TEAM_MEMBER)

    flow.run()

    assert flow.case(case.id).cve == ["CVE-2026-12345"]
    assert flow.case(case.id).status == "new"  # the enclosed /close stayed inert


# ---------------------------------------------------------------------------------------------
# Break 2: a far-future Date makes a report disappear


def test_a_far_future_date_still_makes_a_case_with_receipt_and_deadline(flow: Mailflow) -> None:
    report = raw([("From", f"Rita <{REPORTER}>"), ("To", SECURITY), ("Subject", "XSS"),
                  ("Date", FAR_FUTURE)])
    flow.deliver(report)

    flow.run()

    [case] = flow.cases()
    assert case.ack_due is not None
    [stored] = flow.inbound(case.id)
    assert stored.date == stored.received_at
    assert "bad-date" in stored.flags
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]
    with flow.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundFailure)) == 0


# ---------------------------------------------------------------------------------------------
# Breaks 3 and 4: an absurd argument fails the message; refused commands log the report's text


def test_an_absurd_command_argument_is_a_recorded_refusal_not_a_lost_message(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    reply_id = new_message_id("team.example.test")
    body = "/assess severity=high target=9999-12-31\n/cve CVE-2026-12345\n\nThanks.\n"
    flow.deliver(team_reply(answering=report_id, body=body, message_id=reply_id), TEAM_MEMBER)

    flow.run()

    after = flow.case(case.id)
    assert after.status == "acknowledged"  # the reply reached the reporter
    assert (after.severity, after.target_date, after.cve) == (None, None, ["CVE-2026-12345"])
    [refused] = [e for e in flow.events(case.id) if e.action == "command-refused"]
    assert refused.detail["command"].startswith("/assess")
    assert "out of range" in refused.detail["reason"]
    assert [m.message_id for m in flow.inbound(case.id)][1] == reply_id
    with flow.app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundFailure)) == 0


def test_a_refused_command_is_logged_by_its_name_only(
    flow: Mailflow, caplog: pytest.LogCaptureFixture
) -> None:
    case, report_id = flow.open_report()
    body = ("/assess severity=high target=9999-12-31\n/close SECRET-REASON-TEXT\n"
            "/frobnicate SECRET-WORD\n\nSECRET-BODY\n")
    flow.deliver(team_reply(answering=report_id, body=body), TEAM_MEMBER)

    with caplog.at_level(logging.DEBUG):
        flow.run()

    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mailbot"))
    assert f"{case.id}: /assess refused: target out of range" in logged
    assert f"{case.id}: /close refused: unknown close reason" in logged
    assert f"{case.id}: /(unknown) refused: unknown command" in logged
    assert "SECRET" not in logged and "9999" not in logged and "frobnicate" not in logged
    assert len([e for e in flow.events(case.id) if e.action == "command-refused"]) == 3
