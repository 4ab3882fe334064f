"""Duplicate reports across reporters, through the real servers.

When a new report reads like an open case's report, the new case is flagged
``possible-duplicate`` with an event naming the other case and the similarity; ``cases show``
and the digest show it; nothing is merged. Closed cases are not matched; a restarted mailbot
finds duplicates of the open cases it already had; ``duplicate_similarity_percent = 0`` turns
the check off.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, time
from email import message_from_bytes
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbot.cases.models import Case, Outbox
from mailbot.clock import FixedClock
from mailbot.deadlines.watch import digest_due
from mailbot.duplicates.wiring import IndexedReports
from mailbot.intake.parse_pool import MIN_BATCH
from tests import factories
from tests.integration.test_commands import cli  # noqa: F401  (a fixture)
from tests.integration.test_history import next_weekday_noon
from tests.mailflow import Mailflow
from tests.pgpkeys import Home
from tests.pgpmail import TEAM, Keys, Person, inner_text, pgp_mime, pgp_settings
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

FLAG = "possible-duplicate"

FIRST = (
    "Stored XSS in the comment preview of the wiki",
    "Hello,\n\n"
    "I found a stored cross-site scripting vulnerability in the wiki's comment preview. The "
    "preview endpoint /api/preview renders the markdown of a comment without escaping the "
    "title attribute of links, so a comment containing a crafted link runs JavaScript in the "
    "browser of every user who opens the page, including administrators.\n\n"
    "Steps to reproduce: post a comment with [x](javascript:alert(1) \"onmouseover=alert(1)\"), "
    "open the page as another user and move the mouse over the link. The session cookie is "
    "not HttpOnly, so the script can read it and take over the account.\n\n"
    "Tested on version 4.2.1 with the default configuration.\n\n"
    "Regards,\nRita\n",
)
SAME_AGAIN = (
    "Fwd: XSS in wiki comment preview",
    "Hi security team,\n\n"
    "A stored cross-site scripting vulnerability exists in the wiki's comment preview. The "
    "endpoint /api/preview renders the markdown of a comment without escaping the title "
    "attribute of links, so a comment with a crafted link runs JavaScript in the browser of "
    "every user who opens the page, administrators included.\n\n"
    "To reproduce: post a comment with [x](javascript:alert(1) \"onmouseover=alert(1)\"), "
    "then open the page as another user and hover the link. Because the session cookie is "
    "not HttpOnly, the script can read it and take over the account.\n\n"
    "I tested version 4.2.1 with the default configuration.\n\n"
    "-- \nBob Builder, Example Pentest Ltd\n",
)
UNRELATED = (
    "Path traversal in the backup download",
    "Dear team,\n\n"
    "The backup download handler accepts a file name parameter and joins it to the backup "
    "directory without normalising it. Requesting ../../etc/passwd as the name returns the "
    "system password file to any logged-in user, and the same works for the private TLS key "
    "of the server. The handler should resolve the path and refuse anything outside the "
    "backup directory. Found in release 3.9 of the appliance firmware.\n\n"
    "Kind regards,\nMallory\n",
)
OTHER_REPORTER = "Bob Builder <bob@pentest.example>"


def make_flow(tmp_path: Path, account: ImapAccount, sink: SmtpSink, *, pgp: Any = None,
              **policy: Any) -> Mailflow:
    settings = factories.settings(tmp_path, account.mailbox_settings(), sink.smtp_settings(),
                                  digest_time=time(0, 0), **policy)
    if pgp is not None:
        settings = dataclasses.replace(settings, pgp=pgp)
    return Mailflow(factories.app(settings, FixedClock(datetime.now(UTC))), account, sink)


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    made = make_flow(tmp_path, imap_account, smtp_sink)
    try:
        yield made
    finally:
        made.app.close()


def report(flow: Mailflow, text: tuple[str, str], sender: str = OTHER_REPORTER) -> str:
    """Deliver a report, run, and return the id of the case it opened."""
    subject, body = text
    case, _ = flow.open_report(sender=sender, subject=subject, body=body)
    return case.id


def flagged_as(flow: Mailflow, case_id: str) -> list[dict[str, Any]]:
    return [e.detail for e in flow.events(case_id) if e.action == FLAG]


def digest_text(flow: Mailflow) -> str:
    assert digest_due(flow.app, next_weekday_noon()) == 1
    with flow.app.db.session() as s:
        data = s.scalars(select(Outbox).where(Outbox.kind == "digest")).one().data
    body = message_from_bytes(data, policy=default).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_second_reporter_with_nearly_the_same_report_is_flagged_with_the_first_case(
    flow: Mailflow, cli: Any  # noqa: F811
) -> None:
    first = report(flow, FIRST, sender="Rita Reporter <rita@reporter.example>")
    second = report(flow, SAME_AGAIN)

    [detail] = flagged_as(flow, second)
    assert detail["case"] == first
    assert 0.25 <= detail["similarity"] <= 1.0
    assert FLAG in flow.case(second).flags
    assert FLAG not in flow.case(first).flags and flagged_as(flow, first) == []
    # Nothing merged: both cases open, both reporters got their receipt.
    assert {flow.case(first).status, flow.case(second).status} == {"new"}
    assert flow.case(second).duplicate_of is None
    flow.mailed(2)

    status, out, _ = cli("cases", "show", second, "--json")
    assert status == 0
    assert json.loads(out)["possible_duplicates"] == [
        {"case": first, "similarity": detail["similarity"]}]
    assert json.loads(cli("cases", "show", first, "--json")[1])["possible_duplicates"] == []
    percent = f"{detail['similarity']:.0%}"
    assert f"possible duplicate of {first} ({percent} similar)" in cli("cases", "show", second)[1]

    text = digest_text(flow)
    assert "Possible duplicates (1)" in text
    listed = text.split("Possible duplicates (1)", 1)[1]
    assert f"{second}  reads like {first} ({round(detail['similarity'] * 100)}% similar)" \
        in listed


def test_a_duplicate_within_one_batch_is_flagged_against_the_case_not_yet_written(
    flow: Mailflow,
) -> None:
    # Both reports in one batch: intake writes the batch's rows together, so the first case is
    # still only in memory when the second report is checked against it.
    for sender, (subject, body) in (("Rita Reporter <rita@reporter.example>", FIRST),
                                    (OTHER_REPORTER, SAME_AGAIN)):
        flow.report(sender=sender, subject=subject, body=body)
    flow.run()
    first, second = (c.id for c in flow.cases())
    [detail] = flagged_as(flow, second)
    assert detail["case"] == first


def test_a_backlog_parsed_in_a_parse_process_is_compared_by_signatures_made_there(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large batch is parsed one batch ahead in a parse process, and each report's signature
    is made there too: the daemon compares what it was handed, and still finds the duplicate."""
    settings = factories.settings(
        tmp_path, imap_account.mailbox_settings(parse_processes=1), smtp_sink.smtp_settings())
    flow = Mailflow(factories.app(settings), imap_account, smtp_sink)
    handed: list[tuple[object] | None] = []
    real = IndexedReports.similar

    def similar(self: IndexedReports, session: Any, case_id: str, subject: str, body: str,
                signed: tuple[object] | None = None) -> Any:
        handed.append(signed)
        return real(self, session, case_id, subject, body, signed)

    monkeypatch.setattr(IndexedReports, "similar", similar)
    try:
        flow.report(sender="Rita Reporter <rita@reporter.example>", subject=FIRST[0],
                    body=FIRST[1])
        for i in range(MIN_BATCH - 2):  # other reports, so that the batch goes to the process
            flow.report(sender=f"Reporter {i} <r{i}@reporter.example>",
                        subject=f"{i} {UNRELATED[0]}", body=f"Variant {i}. {UNRELATED[1]}")
        flow.report(sender=OTHER_REPORTER, subject=SAME_AGAIN[0], body=SAME_AGAIN[1])
        flow.run()
        cases = flow.cases()
        first = next(c for c in cases if c.reporter == "rita@reporter.example")
        second = next(c for c in cases if c.reporter == "bob@pentest.example")
        assert [d["case"] for d in flagged_as(flow, second.id)] == [first.id]
        assert len(handed) == MIN_BATCH and all(s is not None for s in handed)
    finally:
        flow.app.close()


def test_an_unrelated_report_is_not_flagged(flow: Mailflow) -> None:
    report(flow, FIRST)
    other = report(flow, UNRELATED)
    assert flagged_as(flow, other) == []
    assert FLAG not in flow.case(other).flags
    assert "Possible duplicates" not in digest_text(flow)


def test_a_closed_case_is_not_matched(flow: Mailflow, cli: Any) -> None:  # noqa: F811
    first = report(flow, FIRST)
    assert cli("cases", "close", first, "invalid")[0] == 0  # after the index holds it
    second = report(flow, SAME_AGAIN)
    assert flagged_as(flow, second) == []
    assert FLAG not in flow.case(second).flags


def test_a_restarted_mailbot_finds_duplicates_of_the_open_cases_it_had(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    before = make_flow(tmp_path, imap_account, smtp_sink)
    try:
        first = report(before, FIRST)
        closed = report(before, UNRELATED)
    finally:
        before.app.close()
    after = make_flow(tmp_path, imap_account, smtp_sink)  # a new app over the same database
    try:
        with after.app.db.session() as s:
            case = s.get(Case, closed)
            assert case is not None
            case.status, case.close_reason = "closed", "invalid"
        second = report(after, SAME_AGAIN)
        [detail] = flagged_as(after, second)
        assert detail["case"] == first
        third = report(after, UNRELATED)  # like a case that was closed before the restart
        assert flagged_as(after, third) == []
    finally:
        after.app.close()


def test_duplicate_detection_is_off_at_zero_percent(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = make_flow(tmp_path, imap_account, smtp_sink, duplicate_similarity_percent=0)
    try:
        report(flow, FIRST)
        second = report(flow, SAME_AGAIN)
        assert flagged_as(flow, second) == []
        assert FLAG not in flow.case(second).flags
    finally:
        flow.app.close()


def test_an_encrypted_report_is_compared_by_its_decrypted_text_after_a_restart(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, team_home: Home,
    pgp_keys: Keys, people: dict[str, Person],
) -> None:
    pgp = pgp_settings(team_home, pgp_keys)
    before = make_flow(tmp_path, imap_account, smtp_sink, pgp=pgp)
    rita = people["rita@reporter.example"]
    armored = rita.home.encrypt(inner_text(FIRST[1], subject=FIRST[0]), to=pgp_keys.team_fpr)
    fields = [("From", "Rita <rita@reporter.example>"), ("To", TEAM), ("Subject", "..."),
              ("Date", format_datetime(datetime.now(UTC))),
              ("Message-ID", make_msgid(domain="reporter.example"))]
    try:
        before.deliver(pgp_mime(fields, armored), envelope_from="rita@reporter.example")
        before.run()
        [first] = before.cases()
        assert "encrypted" in before.inbound(first.id)[0].flags
    finally:
        before.app.close()
    after = make_flow(tmp_path, imap_account, smtp_sink, pgp=pgp)  # the index is rebuilt
    try:
        second = report(after, SAME_AGAIN)
        [detail] = flagged_as(after, second)
        assert detail["case"] == first.id
    finally:
        after.app.close()
