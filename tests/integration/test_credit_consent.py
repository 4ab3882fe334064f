"""Credit consent from the reporter, and the disclosure date, through the real servers.

A reporter answers the receipt with ``/credit "Name, Org"``, ``/credit none`` or ``/anonymous``.
Accepted only from the case's reporter address on a message that threads to the case by our
token; refused (and recorded) from a stranger using the subject tag, from the reporter on an
unthreaded message, and for anything that would change the case's status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests import mailflow
from tests.integration.test_commands import (
    cli,  # noqa: F401  (a fixture)
    send_commands,
)
from tests.mailflow import REPORTER, SECURITY, STRANGER, Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

REFUSED = "reporter-command-refused"


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def reporter_reply(
    flow: Mailflow, body: str, *, sender: str = REPORTER, answering: str | None = None,
    subject: str = "Re: your security report",
) -> None:
    headers = [("From", sender), ("To", SECURITY), ("Subject", subject)]
    if answering:
        headers += [("In-Reply-To", answering), ("References", answering)]
    flow.deliver(mailflow.raw(headers, body), sender)
    flow.run()


def refusals(flow: Mailflow, case_id: str) -> list[dict[str, Any]]:
    return [e.detail for e in flow.events(case_id) if e.action == REFUSED]


def test_the_receipt_asks_how_the_reporter_wants_to_be_credited(flow: Mailflow) -> None:
    flow.open_report()
    [receipt] = flow.mailed(1)
    text = receipt.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "How would you like to be credited?" in text
    assert '/credit "Your Name, Your Organisation"' in text
    assert "/anonymous" in text


@pytest.mark.parametrize(("line", "consent", "credit"), [
    ('/credit "Rita Reporter, Example Labs"', "named", "Rita Reporter, Example Labs"),
    ("/credit none", "anonymous", None),
    ("/anonymous", "anonymous", None),
])
def test_the_reporters_credit_on_a_reply_to_our_receipt_is_recorded(
    flow: Mailflow, line: str, consent: str, credit: str | None
) -> None:
    case, _ = flow.open_report()
    assert flow.case(case.id).credit_consent == "unknown"

    reporter_reply(flow, f"{line}\n\nThanks!\n", answering=flow.receipt_id(case.id))

    after = flow.case(case.id)
    assert (after.credit_consent, after.credit) == (consent, credit)
    with flow.app.db.engine.connect() as conn:  # sealed at rest; no name: nothing stored
        stored = conn.execute(text("SELECT credit FROM cases WHERE id = :id"),
                              {"id": case.id}).scalar()
    if credit is None:
        assert stored is None
    else:
        assert stored is not None
        assert bytes(stored)[:1] == b"\x01" and credit.encode() not in bytes(stored)
    [event] = [e for e in flow.events(case.id) if e.action == "credit"]
    assert event.actor == REPORTER
    assert event.detail["by"] == "reporter" and event.detail["consent"] == consent
    assert "reporter-command" in flow.actions(case.id)
    assert after.status == "new"  # credit is no acknowledgement
    flow.mailed(1)  # the receipt only: nothing is mailed about the command


def test_a_stranger_using_the_subject_tag_cannot_set_the_credit(flow: Mailflow) -> None:
    case, _ = flow.open_report()

    reporter_reply(flow, '/credit "Mallory"\n', sender=STRANGER,
                   subject=f"Re: [{case.id}] your security report")

    assert (flow.case(case.id).credit, flow.case(case.id).credit_consent) == (None, "unknown")
    [other] = [c for c in flow.cases() if c.id != case.id]
    assert other.mentioned_tag == case.id  # the stranger's mail is a case of its own
    [refusal] = refusals(flow, other.id)
    assert refusal["from"] == STRANGER and "in a reply to our mail" in refusal["reason"]
    assert other.credit_consent == "unknown"


def test_a_stranger_replying_to_our_receipt_cannot_set_the_credit(flow: Mailflow) -> None:
    case, _ = flow.open_report()

    reporter_reply(flow, "/anonymous\n", sender=STRANGER, answering=flow.receipt_id(case.id))

    assert flow.case(case.id).credit_consent == "unknown"
    [refusal] = refusals(flow, case.id)
    assert refusal["from"] == STRANGER and "only the case's reporter" in refusal["reason"]


def test_the_reporter_on_an_unthreaded_message_is_refused_and_recorded(flow: Mailflow) -> None:
    case, _ = flow.open_report()

    # Joined by the subject tag (the reporter is a participant), but no reply to our mail.
    reporter_reply(flow, '/credit "Rita"\n', subject=f"Re: [{case.id}] credit")

    [message] = [m for m in flow.inbound(case.id)][1:]
    assert message.case_id == case.id
    assert flow.case(case.id).credit_consent == "unknown"
    [refusal] = refusals(flow, case.id)
    assert "in a reply to our mail" in refusal["reason"]


def test_a_reply_threaded_by_the_reporters_own_message_id_is_not_our_token(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()

    reporter_reply(flow, '/credit "Rita"\n', answering=report_id)

    assert flow.case(case.id).credit_consent == "unknown"
    assert len(refusals(flow, case.id)) == 1


def test_a_reporter_can_never_change_the_status(flow: Mailflow) -> None:
    case, _ = flow.open_report()

    reporter_reply(flow, '/close invalid\n/ack\n/credit "Rita R."\n',
                   answering=flow.receipt_id(case.id))

    after = flow.case(case.id)
    assert after.status == "new"
    assert (after.credit_consent, after.credit) == ("named", "Rita R.")
    assert [r["command"] for r in refusals(flow, case.id)] == ["/close invalid", "/ack"]


def test_a_path_at_the_top_of_a_report_is_no_command(flow: Mailflow) -> None:
    case, _ = flow.open_report(body="/etc/passwd is readable by anyone.\n")
    assert refusals(flow, case.id) == []


def test_the_team_sets_the_disclosure_date_and_json_carries_the_promise(
    flow: Mailflow, cli: Any  # noqa: F811
) -> None:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/assess severity=high target=2027-01-10\n"
                                   "/cve CVE-2026-1234\n/disclose 2027-01-15\n")
    reporter_reply(flow, '/credit "Rita Reporter, Example Labs"\n',
                   answering=flow.receipt_id(case.id))

    status, out, _ = cli("cases", "list", "--json")
    assert status == 0
    [row] = json.loads(out)
    assert {k: row[k] for k in ("disclosure_date", "credit", "credit_consent", "cve", "severity",
                                "target_date")} == {
        "disclosure_date": "2027-01-15", "credit": "Rita Reporter, Example Labs",
        "credit_consent": "named", "cve": ["CVE-2026-1234"], "severity": "high",
        "target_date": "2027-01-10"}
    shown = json.loads(cli("cases", "show", case.id, "--json")[1])
    assert shown["disclosure_date"] == "2027-01-15" and shown["credit_consent"] == "named"
    [event] = [e for e in shown["events"] if e["action"] == "disclosure-date"]
    assert event["detail"] == {"date": "2027-01-15", "was": None}

    assert cli("cases", "disclose", case.id, "2027-02-01")[0] == 0
    assert flow.case(case.id).disclosure_date == date(2027, 2, 1)
    assert cli("cases", "disclose", case.id, "none")[0] == 0
    assert flow.case(case.id).disclosure_date is None
    status, out, err = cli("cases", "disclose", case.id, "2027-13-01")
    assert (status, out) == (2, "") and "2027-01-15" in err and len(err.splitlines()) == 1
    assert cli("cases", "credit", case.id, "none")[0] == 0
    assert flow.case(case.id).credit_consent == "anonymous"


def test_a_disclose_that_cannot_apply_is_recorded_with_the_reason(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/disclose someday\n/disclose 2099-01-01\n")
    refused = [e.detail for e in flow.events(case.id) if e.action == "command-refused"]
    assert [r["command"] for r in refused] == ["/disclose someday", "/disclose 2099-01-01"]
    assert "out of range" in refused[1]["reason"]
    assert flow.case(case.id).disclosure_date is None


def test_a_cve_and_a_cvss_vector_in_the_report_are_shown_as_the_reporters_claim(
    flow: Mailflow, cli: Any  # noqa: F811
) -> None:
    case, _ = flow.open_report(body=(
        "This is CVE-2026-31337 (reserved for us by MITRE).\n"
        "My score: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n"
        "Not a vector: CVSS:3.1/AV:Q/AC:Z\n"))

    shown = json.loads(cli("cases", "show", case.id, "--json")[1])
    assert shown["reporter_claim"] == {
        "cve": ["CVE-2026-31337"],
        "cvss": [{"vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "version": "3.1",
                  "score": 9.8, "severity": "critical"}]}
    # A claim, not the team's decision.
    assert (shown["cve"], shown["severity"]) == ([], None)


def test_a_report_that_claims_nothing_has_no_claim(flow: Mailflow, cli: Any) -> None:  # noqa: F811
    case, _ = flow.open_report()
    assert json.loads(cli("cases", "show", case.id, "--json")[1])["reporter_claim"] is None
