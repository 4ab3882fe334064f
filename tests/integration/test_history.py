"""A mailbox that already holds mail: its history is imported, not answered; late receipts are
withheld. Real Dovecot, real SMTP sink; the history is filed with dated INTERNALDATEs (IMAP
APPEND with a date), as it would have arrived over the years."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases import service
from mailbot.cases.models import Outbox
from mailbot.cli import main
from mailbot.deadlines.watch import digest_due, open_cases_by_deadline
from mailbot.errors import MailboxUnavailable
from mailbot.intake.runner import MailboxRunner
from mailbot.mail.imap import ImapMailbox
from mailbot.mail.message import FetchedMessage
from tests import daemons, factories, mailflow
from tests.integration import test_deadline_watch as watchtest
from tests.mailflow import REPORTER, Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

LONG_AGO = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _flow(tmp_path: Path, account: ImapAccount, sink: SmtpSink, *, answer_existing: bool = False,
          batch_size: int = 100, **policy: Any) -> Mailflow:
    settings = factories.settings(
        tmp_path,
        account.mailbox_settings(answer_existing=answer_existing, batch_size=batch_size),
        sink.smtp_settings(),
        **policy,
    )
    return Mailflow(factories.app(settings), account, sink)


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    f = _flow(tmp_path, imap_account, smtp_sink)
    try:
        yield f
    finally:
        f.app.close()


def _file_history(flow: Mailflow, count: int, *, start: datetime = LONG_AGO) -> list[str]:
    """``count`` old reports filed in INBOX with their true arrival dates; their Message-IDs."""
    ids = []
    for n in range(count):
        when = start + timedelta(days=n)
        message_id = mailflow.new_message_id()
        raw = factories.message(subject=f"Old report {n}", message_id=message_id, date=when)
        flow.account.server.append(flow.account, "INBOX", raw, internal_date=when)
        ids.append(message_id)
    return ids


def next_weekday_noon() -> datetime:
    day = datetime.now(UTC).replace(hour=11, minute=0) + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _watch_and_send(app: App, at: datetime) -> int:
    queued = app.watch_deadlines(at)
    asyncio.run(app.drain_outbox(ignore_backoff=True))
    return queued


def test_history_becomes_imported_cases_without_receipts_or_escalations(flow: Mailflow) -> None:
    _file_history(flow, 3)
    report = flow.run()

    assert report.intake.opened == 3
    cases = flow.cases()
    assert all("imported" in c.flags for c in cases)
    assert all(c.ack_due is None for c in cases)
    assert all("no-receipt" in flow.actions(c.id) for c in cases)
    flow.mailed(0)
    # Years later by the watch's clock: still nobody is reminded of history.
    assert _watch_and_send(flow.app, datetime.now(UTC) + timedelta(days=30)) == 0
    flow.mailed(0)


def test_history_from_just_before_the_first_start_gets_no_receipt_either(flow: Mailflow) -> None:
    # An hour old: a receipt would still be in time, but history is imported, not answered.
    _file_history(flow, 1, start=datetime.now(UTC) - timedelta(hours=1))
    flow.run()

    [case] = flow.cases()
    assert "imported" in case.flags
    [no_receipt] = [e for e in flow.events(case.id) if e.action == "no-receipt"]
    assert no_receipt.detail["reason"].startswith("imported")
    flow.mailed(0)


def test_mail_after_the_first_start_is_answered(flow: Mailflow) -> None:
    _file_history(flow, 2)
    flow.run()
    case, _ = flow.open_report(subject="A new report")

    assert "imported" not in case.flags
    assert case.ack_due is not None
    [receipt] = flow.mailed(1)
    assert receipt.rcpt_tos == (REPORTER,)


def test_a_later_reply_threads_onto_an_imported_case(flow: Mailflow) -> None:
    [first, *_] = _file_history(flow, 2)
    flow.run()
    [imported] = [c for c in flow.cases() if c.subject == "Old report 0"]

    flow.deliver(factories.message(subject="Re: Old report 0", body="Any news?\n",
                                   headers={"In-Reply-To": first, "References": first}))
    report = flow.run()

    assert report.intake.added == 1 and report.intake.opened == 0
    assert len(flow.inbound(imported.id)) == 2
    assert flow.case(imported.id).ack_due is None
    flow.mailed(0)


def test_a_team_reply_to_history_arms_no_deadline(flow: Mailflow) -> None:
    [first] = _file_history(flow, 1)
    flow.run()
    [imported] = flow.cases()
    flow.file_in_sent(mailflow.team_reply(answering=first, subject="Re: Old report 0"))
    flow.run()

    case = flow.case(imported.id)
    assert case.status == "acknowledged"
    assert case.assessment_due is None
    assert _watch_and_send(flow.app, datetime.now(UTC) + timedelta(days=60)) == 0
    flow.mailed(0)


def test_answer_existing_answers_recent_history(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = _flow(tmp_path, imap_account, smtp_sink, answer_existing=True)
    try:
        _file_history(flow, 1, start=datetime.now(UTC) - timedelta(hours=2))
        flow.run()
        [case] = flow.cases()
        assert "imported" not in case.flags
        flow.mailed(1)
    finally:
        flow.app.close()


class _LostAfterFirstBatch:
    """The real mailbox, whose connection drops after the first batch (a crash mid-import)."""

    def __init__(self, mailbox: ImapMailbox) -> None:
        self._mailbox = mailbox

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mailbox, name)

    def fetch_new(self, folder: str, after_uid: int, batch_size: int
                  ) -> Iterator[list[FetchedMessage]]:
        for n, batch in enumerate(self._mailbox.fetch_new(folder, after_uid, batch_size)):
            if n == 1:
                raise MailboxUnavailable("connection lost")
            yield batch


def test_a_restart_in_the_middle_of_an_import_goes_on_importing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    flow = _flow(tmp_path, imap_account, smtp_sink, batch_size=2)
    _file_history(flow, 5)
    app = flow.app
    with ImapMailbox(app.settings.mailbox) as mailbox:
        runner = MailboxRunner(app.db, _LostAfterFirstBatch(mailbox), app.intake,
                               lambda *_: None, batch_size=2)
        with pytest.raises(MailboxUnavailable):
            runner.run_pass()
    assert len(flow.cases()) == 2
    app.close()

    restarted = _flow(tmp_path, imap_account, smtp_sink, batch_size=2)
    try:
        restarted.run()
        cases = restarted.cases()
        assert len(cases) == 5
        assert all("imported" in c.flags for c in cases)
        restarted.mailed(0)
    finally:
        restarted.app.close()


def test_a_receipt_that_would_come_too_late_is_withheld_and_listed_in_the_digest(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    # Answered mail (not history) that reached the mailbox a while ago, while mailbot was down.
    # Hours, not days, past the limit: days-old mail can be near its acknowledgement deadline
    # (it depends on today's weekday), and a reminder to on-call would join the mail counted here.
    flow = _flow(tmp_path, imap_account, smtp_sink, answer_existing=True,
                 receipt_max_age_hours=1, digest_time=datetime.min.time())
    try:
        _file_history(flow, 1, start=datetime.now(UTC) - timedelta(hours=3))
        _file_history(flow, 1, start=datetime.now(UTC) - timedelta(minutes=5))
        flow.run()
        late, fresh = sorted(flow.cases(), key=lambda c: c.received_at)
        assert "receipt-withheld" in late.flags
        assert "receipt-withheld" not in fresh.flags
        [receipt] = flow.mailed(1)
        assert f"[{fresh.id}]" in receipt.message["Subject"]

        assert digest_due(flow.app, next_weekday_noon()) == 1
        with flow.app.db.session() as s:
            data = s.scalars(select(Outbox).where(Outbox.kind == "digest")).one().data
        body = message_from_bytes(data, policy=default).get_body(("plain",))
        assert body is not None
        text = str(body.get_content())
        withheld = text.split("answer the reporter yourself", 1)[1].split("Coming up", 1)[0]
        assert late.id in withheld and fresh.id not in withheld
    finally:
        flow.app.close()


def test_imported_cases_stay_out_of_the_digest(flow: Mailflow) -> None:
    _file_history(flow, 2)
    flow.run()
    with flow.app.db.session() as s:
        entries, total = open_cases_by_deadline(s, flow.app.calendar, flow.app.settings.policy,
                                                datetime.now(UTC))
    assert len(flow.cases()) == 2
    assert total == 0 and entries == []


def test_dry_run_and_check_say_what_waits_and_change_nothing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = daemons.write_config(tmp_path, imap_account.mailbox_settings(answer_existing=False),
                                  smtp_sink.smtp_settings(), url,
                                  extra={"policy": {"receipt_max_age_hours": 1}})
    (tmp_path / "other").mkdir()
    flow = Mailflow(factories.app(factories.settings(  # only to file mail and read the sink
        tmp_path / "other", imap_account.mailbox_settings(), smtp_sink.smtp_settings())),
        imap_account, smtp_sink)
    try:
        _file_history(flow, 3)
        assert main(["--config", str(config), "run", "--once", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "INBOX: 3 message(s) wait: 3 would be imported as history" in out
        assert "Sent: no messages wait" in out
        assert not (tmp_path / "cli.db").exists(), "a dry run creates no database"
        with imap_account.client() as c:
            c.select_folder("INBOX", readonly=True)
            assert c.search(["SEEN"]) == []

        assert main(["--config", str(config), "run", "--once"]) == 0
        capsys.readouterr()
        flow.report(subject="After the start")
        # Too old for a receipt, yet far from its acknowledgement deadline (see above).
        _file_history(flow, 1, start=datetime.now(UTC) - timedelta(hours=3))
        assert main(["--config", str(config), "run", "--once", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert ("INBOX: 2 message(s) wait: 2 would be answered (1 of them too old for a "
                "receipt: flagged for a person)") in out
        main(["--config", str(config), "check"])
        assert "mailbox: note: INBOX: 2 message(s) wait" in capsys.readouterr().out
        assert main(["--config", str(config), "run", "--once"]) == 0
        flow.mailed(1)  # the one in time; the other is flagged, not answered
    finally:
        flow.app.close()


def _watch_skips_imported(url: str) -> None:
    app = watchtest.make_app(watchtest.make_settings(url))
    try:
        imported, current = watchtest.open_report(app), watchtest.open_report(app)
        with app.db.session() as session:
            case = service.get_case(session, imported)
            assert case is not None
            service.add_flags(case, "imported")
        # A person acknowledges both by hand: each now runs an assessment deadline.
        for case_id in (imported, current):
            watchtest.acknowledge(app, case_id, watchtest.FRIDAY_REPORT)
        assert watchtest.check(app, watchtest.FRIDAY_REPORT + timedelta(days=60)) == 1
        assert [r[0] for r in watchtest.reminders(app)] == [current]
    finally:
        app.close()


def test_the_deadline_watch_never_chases_an_imported_case_on_sqlite(tmp_path: Path) -> None:
    _watch_skips_imported(f"sqlite:///{tmp_path / 'w.db'}")


def test_the_deadline_watch_never_chases_an_imported_case_on_postgresql(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    _watch_skips_imported(pg_url)
