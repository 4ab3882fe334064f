"""The team's authority comes only from what the team wrote, and no header loses a report.

Real Dovecot, real SMTP sink. Each test is named after the break it closes: a reporter's text
passed on by the team (forwarded in any shape, quoted, enclosed) never runs as a command; a
header value never keeps a message from becoming a case; a command that cannot apply is a
recorded refusal, logged by its name only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbot.cases.models import InboundFailure
from mailbot.cases.views import case_detail
from mailbot.config import OncallSettings
from mailbot.deadlines.watch import digest_due
from tests import factories, forwards, mailflow
from tests.mailflow import (
    REPORTER,
    SECURITY,
    STRANGER,
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
    far_future_date_makes_a_case(flow)


def test_a_far_future_date_still_makes_a_case_on_postgresql(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str
) -> None:
    with flow_with(tmp_path, imap_account, smtp_sink, database_url=pg_url) as flow:
        far_future_date_makes_a_case(flow)


def far_future_date_makes_a_case(flow: Mailflow) -> None:
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
    absurd_argument_is_refused(flow)


def test_an_absurd_command_argument_is_a_recorded_refusal_on_postgresql(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str
) -> None:
    with flow_with(tmp_path, imap_account, smtp_sink, database_url=pg_url) as flow:
        absurd_argument_is_refused(flow)


def absurd_argument_is_refused(flow: Mailflow) -> None:
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


# ---------------------------------------------------------------------------------------------
# Break 5: mail to on-call counts as an acknowledgement


@contextlib.contextmanager
def flow_with(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, **changes: Any
) -> Iterator[Mailflow]:
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(),
                                  database_url=changes.pop("database_url", None),
                                  **changes.pop("policy", {}))
    app = factories.app(dataclasses.replace(settings, **changes))
    try:
        yield Mailflow(app, imap_account, smtp_sink)
    finally:
        app.close()


ONCALL = "pager@oncall.example"
ROTATION = "carol@rota.example"


@pytest.fixture
def oncall_flow(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> Iterator[Mailflow]:
    with flow_with(tmp_path, imap_account, smtp_sink,
                   oncall=OncallSettings(addresses=(ONCALL,), rotation=(ROTATION,))) as flow:
        yield flow


@pytest.mark.parametrize("reply_to", [ONCALL, ROTATION, "ciso@example.test", SECURITY])
def test_mail_to_on_call_or_the_company_is_no_acknowledgement_whatever_the_reply_to(
    oncall_flow: Mailflow, reply_to: str
) -> None:
    case, report_id = oncall_flow.open_report(headers={"Reply-To": reply_to})
    oncall_flow.deliver(team_reply(answering=report_id, to=reply_to, cc=SECURITY), TEAM_MEMBER)

    oncall_flow.run()

    after = oncall_flow.case(case.id)
    assert (after.status, after.acknowledged_at) == ("new", None)
    assert [m.kind for m in oncall_flow.inbound(case.id)] == ["report", "team"]


def test_a_reply_to_outside_the_house_still_counts(oncall_flow: Mailflow) -> None:
    case, report_id = oncall_flow.open_report(headers={"Reply-To": "rita@private.example"})
    oncall_flow.deliver(team_reply(answering=report_id, to="rita@private.example"), TEAM_MEMBER)

    oncall_flow.run()

    assert oncall_flow.case(case.id).status == "acknowledged"


# ---------------------------------------------------------------------------------------------
# Break 6: the weaker ones


def test_a_genuine_team_reply_resent_with_an_extra_in_reply_to_changes_no_other_case(
    flow: Mailflow,
) -> None:
    first, first_report = flow.open_report()
    second, second_report = flow.open_report(subject="SQL injection in search")
    reply_id = new_message_id("team.example.test")
    genuine = team_reply(answering=first_report, body="/cve CVE-2026-11111\n",
                         message_id=reply_id)
    flow.deliver(genuine, TEAM_MEMBER)
    flow.run()
    assert flow.case(first.id).cve == ["CVE-2026-11111"]

    # Our MX checks the re-sent copy again: the signature still verifies, because a field added
    # above the signed one is not covered by it.
    flow.deliver(genuine.replace(b"In-Reply-To:", f"In-Reply-To: {second_report}\r\nIn-Reply-To:"
                                 .encode(), 1), STRANGER)
    flow.run()

    assert flow.case(second.id).cve == []
    [_, resent] = flow.inbound(second.id)
    assert "repeated-fields" in resent.flags
    assert resent.kind == "unverified-team"


def test_the_same_message_id_with_other_content_does_not_apply_commands_again(
    flow: Mailflow,
) -> None:
    first, first_report = flow.open_report()
    second, second_report = flow.open_report(subject="SQL injection in search")
    reply_id = new_message_id("team.example.test")
    flow.deliver(team_reply(answering=first_report, to=SECURITY, body="/resolve\n",
                            message_id=reply_id), TEAM_MEMBER)
    flow.run()
    assert flow.case(first.id).status == "resolved"

    altered = team_reply(answering=second_report, to=SECURITY, body="/close spam\n",
                         message_id=reply_id)
    flow.deliver(altered, TEAM_MEMBER)
    flow.run()

    assert flow.case(second.id).status == "new"
    assert "team-message-repeated" in flow.actions(second.id)


def test_duplicates_never_make_a_cycle_and_chains_resolve_to_the_root(flow: Mailflow) -> None:
    a, a_report = flow.open_report(subject="one")
    b, b_report = flow.open_report(subject="two")
    c, c_report = flow.open_report(subject="three")
    send = team_reply
    flow.deliver(send(answering=b_report, to=SECURITY, body=f"/duplicate {a.id}\n"), TEAM_MEMBER)
    flow.run()
    flow.deliver(send(answering=a_report, to=SECURITY, body=f"/duplicate {b.id}\n"), TEAM_MEMBER)
    flow.deliver(send(answering=c_report, to=SECURITY, body=f"/duplicate {b.id}\n"), TEAM_MEMBER)
    flow.deliver(send(answering=c_report, to=SECURITY, body=f"/duplicate {c.id}\n"), TEAM_MEMBER)
    flow.run()

    assert (flow.case(b.id).status, flow.case(b.id).duplicate_of) == ("closed", a.id)
    assert (flow.case(a.id).status, flow.case(a.id).duplicate_of) == ("new", None)
    [refused] = [e for e in flow.events(a.id) if e.action == "command-refused"]
    assert f"{b.id} is already a duplicate of {a.id}" in refused.detail["reason"]
    assert flow.case(c.id).duplicate_of == a.id  # b's root, not b


def test_a_stranger_replying_by_message_id_joins_flagged_non_participant(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    every_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    with flow_with(tmp_path, imap_account, smtp_sink,
                   policy={"digest_time": time(0, 0), "workdays": every_day}) as flow:
        stranger_joins(flow)


def stranger_joins(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    flow.deliver(raw([("From", STRANGER), ("To", SECURITY), ("Subject", "Re: XSS"),
                      ("In-Reply-To", report_id)], "I found it first.\n"), STRANGER)
    flow.run()

    [_, joined] = flow.inbound(case.id)
    assert "non-participant" in joined.flags
    with flow.app.db.session() as s:
        shown = case_detail(s, flow.case(case.id))
    assert "non-participant" in shown["flags"]
    assert digest_due(flow.app, flow.app.clock.now()) == 1
    [digest] = [m for m in flow.outbox() if m.kind == "digest"]
    assert f"{case.id}  new" in digest.data.decode() and "[non-participant]" in digest.data.decode()


def test_the_reporter_replying_by_message_id_is_no_stranger(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    flow.deliver(raw([("From", f"Rita <{REPORTER}>"), ("To", SECURITY), ("Subject", "Re: XSS"),
                      ("In-Reply-To", report_id)]))
    flow.run()

    [_, reply] = flow.inbound(case.id)
    assert "non-participant" not in reply.flags
    assert "non-participant" not in flow.case(case.id).flags


def test_plus_addresses_share_one_receipt_limit(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    with flow_with(tmp_path, imap_account, smtp_sink,
                   policy={"receipts_per_sender_per_day": 2}) as flow:
        plus_addresses(flow)


def plus_addresses(flow: Mailflow) -> None:
    for sender in ("rita+a@reporter.example", "Rita+b@reporter.example", "rita+c@reporter.example",
                   "r.i.t.a+x@googlemail.com", "rita@gmail.com"):
        flow.report(sender=sender)
    flow.run()

    flags = [c.flags for c in flow.cases()]
    assert ["rate-limited" in f for f in flags] == [False, False, True, False, False]
    assert len(flow.mailed(4)) == 4


def test_receipts_per_hour_holds_back_the_rest_and_the_digest_counts_them(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    every_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    with flow_with(tmp_path, imap_account, smtp_sink,
                   policy={"receipts_per_hour": 2, "digest_time": time(0, 0),
                           "workdays": every_day}) as flow:
        hourly_limit(flow)


def hourly_limit(flow: Mailflow) -> None:
    for n in range(3):
        flow.report(sender=f"reporter{n}@reporter{n}.example")
    flow.run()

    assert len(flow.mailed(2)) == 2
    [held] = [c for c in flow.cases() if "receipt-held-back" in c.flags]
    assert "receipt-held-back" in flow.actions(held.id)
    assert len(flow.cases()) == 3
    assert digest_due(flow.app, flow.app.clock.now()) == 1
    [digest] = [m for m in flow.outbox() if m.kind == "digest"]
    assert "1 receipt held back in the last 24 hours" in digest.data.decode()
