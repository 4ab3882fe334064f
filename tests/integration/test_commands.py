"""The team's commands, by email (trusted team mail only) and by CLI, on real servers.

Email commands are whole lines at the very top of a trusted team message; from anyone else they
are plain text. A command that cannot apply is recorded on the case with its reason and nothing is
mailed about it. ``mailbot cases ...`` performs the same transitions from the operator's shell.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests import mailflow
from tests.mailflow import REPORTER, SECURITY, TEAM_MEMBER, Mailflow, new_message_id, team_reply
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

TARGET = date(2026, 12, 15)
MESSAGE_KEYS = {"direction", "kind", "from", "to", "message_id", "date"}
EVENT_KEYS = {"actor", "at", "action", "source"}


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def command_mail(answering: str, body: str, *, message_id: str | None = None) -> bytes:
    """An authenticated team message to security@ only, in the case's thread."""
    return team_reply(answering=answering, to=SECURITY, cc=None, body=body, message_id=message_id)


def send_commands(flow: Mailflow, answering: str, body: str) -> str:
    message_id = new_message_id("team.example.test")
    flow.deliver(command_mail(answering, body, message_id=message_id), TEAM_MEMBER)
    flow.run()
    return message_id


def test_assess_from_the_trusted_team_records_severity_target_and_resolution_due(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()

    sent = send_commands(flow, report_id, f"/assess severity=high target={TARGET}\n\nThanks.\n")

    assessed = flow.case(case.id)
    assert (assessed.status, assessed.severity, assessed.target_date) == (
        "assessed",
        "high",
        TARGET,
    )
    assert assessed.resolution_due == flow.app.calendar.end_of_day(TARGET)
    # Assessing a new case acknowledges it on the way.
    assert assessed.acknowledged_at is not None
    assert assessed.assessed_at is not None
    assert flow.actions(case.id) == ["opened", "acknowledged", "assessed", "command"]
    for event in flow.events(case.id)[1:]:
        assert (event.actor, event.source) == (TEAM_MEMBER, f"message:{sent}")
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


def test_close_from_the_reporter_is_plain_text(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    flow.deliver(
        mailflow.raw(
            [
                ("From", REPORTER),
                ("To", SECURITY),
                ("Subject", f"Re: [{case.id}] XSS"),
                ("In-Reply-To", report_id),
            ],
            "/close spam\n/ack\n",
        )
    )

    flow.run()

    assert flow.case(case.id).status == "new"
    # Not obeyed; recorded as refused, so the team sees what the reporter tried.
    assert flow.actions(case.id) == ["opened", "reporter-command-refused",
                                     "reporter-command-refused"]
    assert [m.kind for m in flow.inbound(case.id)] == ["report", "follow-up"]
    assert [m.rcpt_tos for m in flow.mailed(1)] == [(REPORTER,)]


def test_refused_commands_are_recorded_with_their_reason_and_nothing_is_mailed(
    flow: Mailflow,
) -> None:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/close invalid\n")

    send_commands(flow, report_id, "/resolve\n/frobnicate now\n/assess severity=urgent\n")

    closed = flow.case(case.id)
    assert (closed.status, closed.close_reason) == ("closed", "invalid")
    refused = [e.detail for e in flow.events(case.id) if e.action == "command-refused"]
    assert [r["command"] for r in refused] == [
        "/resolve",
        "/frobnicate now",
        "/assess severity=urgent",
    ]
    assert "already closed" in refused[0]["reason"]
    assert "unknown command /frobnicate" in refused[1]["reason"]
    assert "severity must be one of" in refused[2]["reason"]
    # The reporter's notice of the /close; the refused commands mail nothing.
    assert [row.kind for row in flow.outbox()] == ["receipt", "notice"]
    assert len(flow.mailed(2)) == 2


def test_an_ack_on_a_reply_all_that_acknowledged_is_no_refusal(
    flow: Mailflow, caplog: pytest.LogCaptureFixture
) -> None:
    case, report_id = flow.open_report()
    caplog.set_level(logging.DEBUG, logger="mailbot.intake")

    flow.deliver(team_reply(answering=report_id, body="/ack\n\nThanks, we are on it.\n"),
                 TEAM_MEMBER)
    flow.run()

    assert flow.case(case.id).status == "acknowledged"
    assert flow.actions(case.id) == ["opened", "acknowledged", "command"]
    said = [(r.levelno, r.getMessage()) for r in caplog.records if case.id in r.getMessage()]
    assert not [m for _, m in said if "refused" in m]
    assert (logging.DEBUG, f"{case.id}: /ack: already acknowledged by this message") in said


def test_commands_below_other_text_or_in_quotes_are_not_obeyed(flow: Mailflow) -> None:
    case, report_id = flow.open_report()

    send_commands(flow, report_id, "Looking at it.\n/close spam\n\n> /resolve\n")

    assert flow.case(case.id).status == "new"
    assert "command" not in flow.actions(case.id)


def test_several_commands_apply_in_order(flow: Mailflow) -> None:
    case, report_id = flow.open_report()

    send_commands(
        flow,
        report_id,
        '/ack\n/cve cve-2026-12345\n/credit "Rita R. Porter"\n/resolve\n/close fixed\n/reopen\n',
    )

    reopened = flow.case(case.id)
    assert reopened.status == "acknowledged"
    assert reopened.cve == ["CVE-2026-12345"]
    assert reopened.credit == "Rita R. Porter"
    assert [a for a in flow.actions(case.id) if a != "command"] == [
        *("opened", "acknowledged", "cve", "credit", "resolved", "closed", "reopened"),
    ]
    assert flow.actions(case.id).count("command") == 6


def test_commands_from_the_shared_mailbox_sent_folder_are_obeyed(flow: Mailflow) -> None:
    case, report_id = flow.open_report()
    reply = team_reply(
        answering=report_id,
        sender=f"Example Security <{SECURITY}>",
        authentication_results=None,
        body=f"/assess severity=low target={TARGET}\n\nWe consider this low risk.\n",
    )
    flow.file_in_sent(reply)

    flow.run()

    assert flow.case(case.id).severity == "low"


def test_two_reporters_with_the_same_bug_get_two_cases_and_duplicate_links_them(
    flow: Mailflow,
) -> None:
    first, _ = flow.open_report(sender="Rita <rita@reporter.example>")
    second, second_report = flow.open_report(sender="Sam <sam@other.example>")
    assert first.id != second.id
    assert sorted(m.rcpt_tos for m in flow.mailed(2)) == [
        ("rita@reporter.example",),
        ("sam@other.example",),
    ]

    send_commands(flow, second_report, f"/duplicate {first.id.lower()}\n")

    duplicate = flow.case(second.id)
    assert (duplicate.status, duplicate.close_reason) == ("closed", "duplicate")
    assert duplicate.duplicate_of == first.id
    assert flow.case(first.id).status == "new"
    [linked] = [e for e in flow.events(first.id) if e.action == "duplicate-linked"]
    assert linked.detail == {"duplicate": second.id}
    [of] = [e for e in flow.events(second.id) if e.action == "duplicate-of"]
    assert of.detail == {"of": first.id}
    # Sam is told the case closed as a duplicate; neither reporter hears about the other.
    mailed = flow.mailed(3)
    assert [m.rcpt_tos for m in mailed][-1] == ("sam@other.example",)
    assert first.id.encode() not in mailed[-1].data


# ---------------------------------------------------------------------------------------------
# The same transitions from the CLI


@pytest.fixture
def cli(flow: Mailflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli("cases", "ack", ID)`` -> (exit status, stdout, stderr), in-process, same database."""
    from mailbot.cli import main

    monkeypatch.setenv("MAILBOT_TEST_PASSWORD", "unused")
    config = tmp_path / "cli.toml"
    config.write_text(
        f"""
[mailbox]
host = "127.0.0.1"
port = 1
security = "none"
username = "{SECURITY}"
password_env = "MAILBOT_TEST_PASSWORD"
[smtp]
host = "127.0.0.1"
port = 1
security = "none"
from = "Example Security <{SECURITY}>"
[database]
url = "{flow.app.settings.database.url}"
[team]
addresses = ["{TEAM_MEMBER}"]
authserv_id = "mx.example.test"
[policy]
timezone = "Europe/Amsterdam"
[storage]
key_file = "{flow.app.settings.storage.key_file}"
"""
    )

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(["--config", str(config), *argv])
            except SystemExit as exc:  # argparse errors
                status = int(exc.code or 0)
        return status, out.getvalue(), err.getvalue()

    return run


def test_cli_transitions_walk_a_case_through_its_life(flow: Mailflow, cli: Any) -> None:
    case, _ = flow.open_report()

    assert cli("cases", "ack", case.id) == (0, f"{case.id}: acknowledged\n", "")
    assert cli(
        "cases", "assess", case.id.lower(), "--severity", "critical", "--target", str(TARGET)
    ) == (0, f"{case.id}: assessed\n", "")
    assert cli("cases", "resolve", case.id)[0:2] == (0, f"{case.id}: resolved\n")
    assert cli("cases", "close", case.id, "fixed")[0:2] == (0, f"{case.id}: closed\n")
    assert cli("cases", "reopen", case.id)[0:2] == (0, f"{case.id}: assessed\n")
    assert cli("cases", "cve", case.id, "CVE-2026-4242")[0] == 0
    assert cli("cases", "credit", case.id, "Rita R. Porter")[0] == 0

    reopened = flow.case(case.id)
    assert (reopened.severity, reopened.target_date) == ("critical", TARGET)
    assert reopened.resolution_due == flow.app.calendar.end_of_day(TARGET)
    assert reopened.assessment_due is not None
    assert (reopened.cve, reopened.credit) == (["CVE-2026-4242"], "Rita R. Porter")
    status, out, _ = cli("cases", "show", case.id, "--json")
    assert status == 0
    shown = json.loads(out)
    # The receipt, and the reporter's notices of the resolve and the close.
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "out", "out"]
    for message in shown["messages"]:
        assert set(message) >= MESSAGE_KEYS
    assert shown["messages"][0]["from"] == REPORTER
    assert shown["messages"][1]["to"] == [REPORTER]
    for event in shown["events"]:
        assert set(event) >= EVENT_KEYS
    by_cli = [e for e in shown["events"] if e["actor"].startswith("cli:")]
    assert [e["action"] for e in by_cli if e["action"] != "command"] == [
        *("acknowledged", "assessed", "resolved", "closed", "reopened", "cve", "credit"),
    ]
    assert {e["actor"] for e in by_cli} == {f"cli:{getpass.getuser()}"}
    assessed = next(e for e in by_cli if e["action"] == "assessed")
    assert assessed["source"] == (
        f"cli:cases assess {case.id} severity=critical target={TARGET.isoformat()}"
    )
    assert shown["events"][0]["source"].startswith("message:<")
    status, out, _ = cli("cases", "show", case.id)
    assert status == 0
    assert "reopened" in out
    assert REPORTER in out


def test_cli_duplicate_links_both_cases(flow: Mailflow, cli: Any) -> None:
    first, _ = flow.open_report(sender="rita@reporter.example")
    second, _ = flow.open_report(sender="sam@other.example")

    assert cli("cases", "duplicate", second.id, first.id)[0:2] == (0, f"{second.id}: closed\n")

    assert flow.case(second.id).duplicate_of == first.id
    assert "duplicate-linked" in flow.actions(first.id)


@pytest.mark.parametrize("action", [("ack",), ("close", "spam"), ("duplicate", "SEC-2026-0001")])
def test_cli_on_an_unknown_case_is_one_line_and_exit_2(
    flow: Mailflow, cli: Any, action: tuple[str, ...]
) -> None:
    status, out, err = cli("cases", action[0], "SEC-1999-0042", *action[1:])

    assert (status, out) == (2, "")
    assert err == "mailbot: error: no case 'SEC-1999-0042'; `mailbot cases list` shows the ids\n"


def test_cli_refuses_a_transition_that_cannot_apply_in_one_line(flow: Mailflow, cli: Any) -> None:
    case, _ = flow.open_report()
    assert cli("cases", "close", case.id, "invalid")[0] == 0

    status, out, err = cli("cases", "resolve", case.id)

    assert (status, out) == (2, "")
    assert err == f"mailbot: error: {case.id} is already closed\n"
    assert flow.case(case.id).status == "closed"
    assert flow.actions(case.id).count("resolved") == 0
