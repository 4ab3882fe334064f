"""Only trusted team mail changes a case (docs/design.md, "Trust"), on real servers.

Trusted: an Authentication-Results field from our own authserv-id with DMARC or DKIM pass for the
sender's domain, or a message in the shared mailbox's Sent folder. Anything else that claims or
imitates the team is recorded on the case, flagged ``unauthenticated-team`` and never obeyed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mailflow
from tests.mailflow import (
    PASS,
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

OUR_MX = "mx.example.test"
EVIL_PASS = f"{OUR_MX}; spf=pass smtp.mailfrom=evil.example; dkim=pass header.d=evil.example; "
EVIL_PASS += "dmarc=pass header.from=evil.example"
CLOSE_IT = "/close spam\n\nNot a real issue.\n"


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def test_an_authenticated_team_reply_all_acknowledges_and_starts_the_assessment_clock(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    reply_id = new_message_id("team.example.test")
    flow.deliver(team_reply(answering=report_id, message_id=reply_id), TEAM_MEMBER)

    flow.run()

    acked = flow.case(case.id)
    [_, reply] = flow.inbound(case.id)
    assert acked.status == "acknowledged"
    assert acked.acknowledged_at == reply.received_at
    assert acked.assessment_due == flow.app.calendar.add_business_days(reply.received_at, 7)
    assert reply.kind == "team"
    assert "pass for team.example.test" in reply.details["trust"]
    [ack] = [e for e in flow.events(case.id) if e.action == "acknowledged"]
    assert (ack.actor, ack.source) == (TEAM_MEMBER, f"message:{reply_id}")
    assert ack.detail["explicit"] is False
    # The team's reply is theirs to send: mailbot adds nothing, to nobody.
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


def test_a_dkim_pass_for_the_team_domain_is_enough(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    dkim_only = f"{OUR_MX}; dkim=pass header.d=team.example.test header.s=sel"
    flow.deliver(team_reply(answering=report_id, authentication_results=dkim_only))

    flow.run()

    assert flow.case(case.id).status == "acknowledged"


# Each is a reply-all to the report that claims or imitates the team and tries to close the case.
UNTRUSTED = {
    "no Authentication-Results": (f"Alice <{TEAM_MEMBER}>", None),
    "results from another authserv-id": (
        f"Alice <{TEAM_MEMBER}>",
        PASS.replace(OUR_MX, "mx.evil.example"),
    ),
    "our authserv-id only in a comment": (
        f"Alice <{TEAM_MEMBER}>",
        PASS.replace(OUR_MX, f"mx.evil.example ({OUR_MX})"),
    ),
    "a pass for another domain": (f"Alice <{TEAM_MEMBER}>", EVIL_PASS),
    "a fail beside a forged pass": (
        f"Alice <{TEAM_MEMBER}>",
        f"{OUR_MX}; dmarc=fail header.from=team.example.test",
    ),
    "team address as display name": (f'"{TEAM_MEMBER}" <{STRANGER}>', EVIL_PASS),
    "team address as bare display name": (f"{TEAM_MEMBER} <{STRANGER}>", EVIL_PASS),
    "double @": (f"{TEAM_MEMBER}@evil.example", EVIL_PASS),
    "team address in a comment": (f"{STRANGER} ({TEAM_MEMBER})", EVIL_PASS),
    "encoded-word display name": (
        f"=?utf-8?q?alice=40team=2Eexample=2Etest?= <{STRANGER}>",
        EVIL_PASS,
    ),
    "encoded-word local part": ("=?utf-8?q?alice?=@team.example.test", EVIL_PASS),
    "team domain as a subdomain of another": (
        "Alice <alice@team.example.test.evil.example>",
        EVIL_PASS.replace("evil.example", "team.example.test.evil.example"),
    ),
    "two addresses in From": (f"{TEAM_MEMBER}, {STRANGER}", PASS),
}


@pytest.mark.parametrize("variant", sorted(UNTRUSTED))
def test_untrusted_team_mail_changes_nothing_and_is_flagged(flow: Mailflow, variant: str) -> None:
    sender, results = UNTRUSTED[variant]
    case, report_id = flow.open_report()
    reply_id = new_message_id("evil.example")
    flow.deliver(
        team_reply(
            answering=report_id,
            sender=sender,
            authentication_results=results,
            body=CLOSE_IT,
            message_id=reply_id,
        ),
        STRANGER,
    )

    flow.run()

    assert_recorded_flagged_and_ignored(flow, case.id, reply_id)


def test_two_from_fields_change_nothing_and_are_flagged(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    reply_id = new_message_id("evil.example")
    message = raw(
        [
            ("Authentication-Results", PASS),
            ("From", f"Alice <{TEAM_MEMBER}>"),
            ("From", STRANGER),
            ("To", REPORTER),
            ("Subject", "Re: XSS in the login form"),
            ("In-Reply-To", report_id),
        ],
        CLOSE_IT,
        message_id=reply_id,
    )
    flow.deliver(message, STRANGER)

    flow.run()

    assert_recorded_flagged_and_ignored(flow, case.id, reply_id)


def test_a_forged_pass_below_our_servers_own_results_changes_nothing_and_is_flagged(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    reply_id = new_message_id("team.example.test")
    ours = f"{OUR_MX}; spf=softfail smtp.mailfrom=team.example.test; dkim=none; dmarc=none"
    message = raw(
        [
            ("Authentication-Results", ours),  # what our MX added on top, on arrival
            ("From", f"Alice <{TEAM_MEMBER}>"),
            ("To", REPORTER),
            ("Cc", SECURITY),
            ("Subject", "Re: XSS in the login form"),
            ("In-Reply-To", report_id),
            ("Authentication-Results", PASS),  # written by the sender
        ],
        CLOSE_IT,
        message_id=reply_id,
    )
    flow.deliver(message, STRANGER)

    flow.run()

    assert_recorded_flagged_and_ignored(flow, case.id, reply_id)


def assert_recorded_flagged_and_ignored(flow: Mailflow, case_id: str, reply_id: str) -> None:
    case = flow.case(case_id)
    assert (case.status, case.acknowledged_at, case.assessment_due) == ("new", None, None)
    assert "unauthenticated-team" in case.flags
    [_, reply] = flow.inbound(case_id)
    assert reply.kind == "unverified-team"
    assert "unauthenticated-team" in reply.flags
    [flagged] = [e for e in flow.events(case_id) if e.action == "unauthenticated-team"]
    assert flagged.source == f"message:{reply_id}"
    assert flagged.detail["reason"]
    assert flow.actions(case_id) == ["opened", "unauthenticated-team"]
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


def test_a_reply_from_the_shared_mailbox_acknowledges_though_its_from_is_security(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    reply = team_reply(
        answering=report_id,
        sender=f"Example Security <{SECURITY}>",
        cc=None,
        authentication_results=None,
    )
    flow.file_in_sent(reply)

    flow.run()

    acked = flow.case(case.id)
    assert acked.status == "acknowledged"
    assert acked.assessment_due is not None
    [_, filed] = flow.inbound(case.id)
    assert (filed.kind, filed.folder, filed.from_addr) == ("team", "Sent", SECURITY)
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


@pytest.mark.parametrize("sender", [f"Example Security <{SECURITY}>", f"Alice <{TEAM_MEMBER}>"])
def test_the_sent_copy_counts_when_an_untrusted_inbox_copy_came_first(
    flow: Mailflow, sender: str
) -> None:
    case, report_id = flow.open_report()
    reply_id = new_message_id("example.test")
    reply = team_reply(
        answering=report_id, sender=sender, authentication_results=None, message_id=reply_id
    )
    flow.deliver(reply, SECURITY)  # reply-all: security@ gets a copy, unauthenticated
    flow.run()
    assert flow.case(case.id).status == "new"

    flow.file_in_sent(reply)
    report = flow.run()

    assert report.intake.duplicates == 1
    acked = flow.case(case.id)
    assert acked.status == "acknowledged"
    assert "unauthenticated-team" not in acked.flags
    [_, stored] = flow.inbound(case.id)
    assert stored.kind == "team"
    assert "unauthenticated-team" not in stored.flags
    [ack] = [e for e in flow.events(case.id) if e.action == "acknowledged"]
    assert ack.source == f"message:{reply_id}"
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


def test_the_inbox_copy_after_the_sent_copy_changes_nothing(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    reply = team_reply(
        answering=report_id, sender=f"Example Security <{SECURITY}>", authentication_results=None
    )
    flow.file_in_sent(reply)
    flow.run()
    flow.deliver(reply, SECURITY)

    report = flow.run()

    assert report.intake.duplicates == 1
    assert flow.case(case.id).status == "acknowledged"
    assert flow.actions(case.id).count("acknowledged") == 1
    assert len(flow.inbound(case.id)) == 2


def test_an_untrusted_copy_delivered_twice_to_the_inbox_stays_untrusted(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    reply = team_reply(answering=report_id, authentication_results=None)
    flow.deliver(reply, TEAM_MEMBER)
    flow.deliver(reply, TEAM_MEMBER)

    flow.run()

    assert flow.case(case.id).status == "new"
    assert flow.actions(case.id) == ["opened", "unauthenticated-team"]


def test_mailbots_own_copy_in_the_sent_folder_is_not_the_team(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    own_copy = raw(
        [
            ("From", f"Example Security <{SECURITY}>"),
            ("To", REPORTER),
            ("Subject", f"[{case.id}] We received your report"),
            ("In-Reply-To", report_id),
            ("Auto-Submitted", "auto-replied"),
            ("X-Mailbot-Loop", SECURITY),
        ]
    )
    flow.file_in_sent(own_copy)

    flow.run()

    assert flow.case(case.id).status == "new"
    [_, copy] = flow.inbound(case.id)
    assert copy.kind == "own-copy"


def test_a_team_message_that_does_not_reach_the_reporter_does_not_acknowledge(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    internal = team_reply(answering=report_id, to=SECURITY, cc="bob@team.example.test")
    flow.deliver(internal, TEAM_MEMBER)

    flow.run()

    assert flow.case(case.id).status == "new"
    [_, note] = flow.inbound(case.id)
    assert note.kind == "team"


def tagged_team_note(case_id: str, authentication_results: str | None) -> bytes:
    headers = [("From", f"Alice <{TEAM_MEMBER}>"), ("To", SECURITY)]
    if authentication_results:
        headers.insert(0, ("Authentication-Results", authentication_results))
    return raw([*headers, ("Subject", f"Notes on [{case_id}]")], "Reproduced on staging.\n")


def test_a_tagged_message_from_the_trusted_team_joins_the_case(flow: Mailflow) -> None:
    case, _ = flow.open_report()
    flow.deliver(tagged_team_note(case.id, PASS), TEAM_MEMBER)

    report = flow.run()

    assert report.intake.added == 1
    [_, note] = flow.inbound(case.id)
    assert "from a trusted team member" in note.details["correlation"]


def test_a_tagged_message_from_the_untrusted_team_opens_a_flagged_case_without_receipt(
    flow: Mailflow,
) -> None:
    case, _ = flow.open_report()
    flow.deliver(tagged_team_note(case.id, None), TEAM_MEMBER)

    report = flow.run()

    assert report.intake.opened == 1
    assert len(flow.inbound(case.id)) == 1
    [_, new] = flow.cases()
    assert new.mentioned_tag == case.id
    assert "unauthenticated-team" in new.flags
    assert "unauthenticated-team" in flow.actions(new.id)
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


@pytest.mark.parametrize("results", [PASS, None], ids=["trusted", "unauthenticated"])
def test_a_new_thread_from_the_team_opens_a_case_without_receipt_or_acknowledgement_clock(
    flow: Mailflow, results: str | None
) -> None:
    note = raw(
        ([("Authentication-Results", results)] if results else [])
        + [("From", f"Alice <{TEAM_MEMBER}>"), ("To", SECURITY), ("Subject", "FYI: libfoo CVE")]
    )
    flow.deliver(note, TEAM_MEMBER)

    flow.run()

    [case] = flow.cases()
    assert case.ack_due is None
    assert flow.outbox() == []


def test_a_team_reply_to_the_reports_reply_to_address_acknowledges(flow: Mailflow) -> None:
    case, report_id = flow.open_report(headers={"Reply-To": "rita.private@mail.example"})
    flow.deliver(team_reply(answering=report_id, to="Rita <rita.private@mail.example>"),
                 TEAM_MEMBER)

    flow.run()

    assert flow.case(case.id).status == "acknowledged"


def test_a_reply_to_naming_the_team_never_turns_team_mail_into_an_acknowledgement(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report(headers={"Reply-To": TEAM_MEMBER})
    flow.deliver(team_reply(answering=report_id, to=TEAM_MEMBER), TEAM_MEMBER)

    flow.run()

    assert flow.case(case.id).status == "new"
