"""A batch of messages is written together, and one bad message still goes alone.

The runner first takes a batch whole (no savepoint per message, the rows written together); if
anything raises, the batch is rolled back and done again message by message, each in a savepoint
of its own. Against real Dovecot and SMTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.app import App, CycleReport
from mailbot.cases.models import Case, InboundFailure, MailboxCursor, Message, Outbox
from mailbot.intake import pipeline, runner
from mailbot.intake.classify import classify as real_classify
from mailbot.intake.pipeline import Intake, Outcome
from mailbot.intake.prepared import Prepared
from mailbot.mail.message import FetchedMessage
from tests import factories, mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

BATCH = 6
BODIES = [
    "The login form reflects the next parameter into a script block.\n",
    "Password reset tokens never expire and can be replayed a year later.\n",
    "The export endpoint returns other tenants' invoices when the id is changed.\n",
    "An SVG upload runs script in the admin's browser on the gallery page.\n",
    "The mobile API accepts a JWT signed with the none algorithm.\n",
    "Directory listing is on for the backups folder with yesterday's database dump.\n",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def bot(
    request: pytest.FixtureRequest, tmp_path: Path, imap_account: ImapAccount,
    smtp_sink: SmtpSink,
) -> Iterator[App]:
    url = None
    if request.param == "postgresql":
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
    app = factories.app(factories.settings(
        tmp_path, imap_account.mailbox_settings(batch_size=BATCH), smtp_sink.smtp_settings(),
        database_url=url, receipts_per_sender_per_day=2,
    ))
    yield app
    app.close()


def deliver(account: ImapAccount, raw: bytes) -> None:
    assert account.server is not None
    account.server.deliver(account, raw, sender="someone@reporter.example")


def run_once(app: App) -> CycleReport:
    return asyncio.run(app.run_once())


def calls_of_process(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The uid of every message the runner hands to the pipeline, in order."""
    calls: list[int] = []
    real = pipeline.process

    def process(session: Session, fetched: FetchedMessage, intake: Intake,
                prepared: Prepared | None = None) -> Outcome:
        calls.append(fetched.uid)
        return real(session, fetched, intake, prepared)

    monkeypatch.setattr(runner, "process", process)
    return calls


def test_a_batch_with_one_poisonous_message_commits_the_others_and_quarantines_that_one(
    bot: App, imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    def classify(msg: Any, folder: str, settings: Any, **signed: Any) -> Any:
        if msg.subject == "poison":
            raise RuntimeError("boom")
        return real_classify(msg, folder, settings, **signed)

    monkeypatch.setattr(pipeline, "classify", classify)
    subjects = ["one", "two", "three", "poison", "five", "six"]
    for n, subject in enumerate(subjects):
        deliver(imap_account, factories.message(subject=subject, body=BODIES[n] * 3,
                                                sender=f"r{n}@reporter.example"))
    calls = calls_of_process(monkeypatch)

    first = run_once(bot)

    # Tried whole up to the poison, rolled back, then every message alone.
    assert calls == [1, 2, 3, 4, 1, 2, 3, 4, 5, 6]
    assert (first.intake.opened, first.intake.failed) == (5, 1)
    assert sorted(c.subject for c in cases(bot)) == sorted(s for s in subjects if s != "poison")
    # Six different reports: none is flagged as another's duplicate (nor as its own, from the
    # batch's first try, rolled back).
    assert not any("possible-duplicate" in c.flags for c in cases(bot))
    with bot.db.session() as s:
        assert s.scalar(select(MailboxCursor.last_uid)) == 6
        [failure] = s.scalars(select(InboundFailure))
        assert (failure.uid, failure.attempts, failure.quarantined) == (4, 1, False)
        assert "boom" in (failure.last_error or "")
        receipts = s.scalar(select(func.count()).select_from(Outbox)
                            .where(Outbox.kind == "receipt"))
    assert receipts == 5

    run_once(bot)
    third = run_once(bot)

    assert third.intake.quarantined == 1
    with bot.db.session() as s:
        [failure] = s.scalars(select(InboundFailure))
        assert failure.quarantined and failure.raw_id is not None
        alerts = s.scalars(select(Outbox).where(Outbox.kind == "alert")).all()
    assert len(alerts) == 1
    assert len(cases(bot)) == 5


def test_a_batch_taken_whole_sees_its_own_earlier_messages(
    bot: App, imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same message twice, a team reply to a report of the same batch, and a sender past
    the receipt limit within the batch: all as if the messages had come one by one."""
    report_id = mailflow.new_message_id()
    report = factories.message(subject="XSS", message_id=report_id,
                               sender="Rita <rita@reporter.example>")
    deliver(imap_account, report)
    deliver(imap_account, report)  # the same bytes again: one message
    deliver(imap_account, mailflow.team_reply(answering=report_id, subject="Re: XSS"))
    for n in range(3):  # the limit is 2 receipts a day per sender; the first report had one
        deliver(imap_account, factories.message(subject=f"more {n}",
                                                sender="Rita <rita@reporter.example>"))
    calls = calls_of_process(monkeypatch)

    report_of_run = run_once(bot)

    assert calls == [1, 2, 3, 4, 5, 6]  # once each: the batch went through whole
    assert (report_of_run.intake.opened, report_of_run.intake.added,
            report_of_run.intake.duplicates) == (4, 1, 1)
    by_subject = {c.subject: c for c in cases(bot)}
    assert set(by_subject) == {"XSS", "more 0", "more 1", "more 2"}
    xss = by_subject["XSS"]
    assert xss.status == "acknowledged"  # the team's reply, found by its In-Reply-To
    with bot.db.session() as s:
        kinds = sorted(s.scalars(select(Message.kind).where(Message.case_id == xss.id)))
        receipts = list(s.scalars(select(Outbox.case_id).where(Outbox.kind == "receipt")))
    assert kinds == ["receipt", "report", "team"]
    assert sorted(r or "" for r in receipts) == sorted([xss.id, by_subject["more 0"].id])
    assert [("rate-limited" in by_subject[f"more {n}"].flags) for n in range(3)] == \
        [False, True, True]


def cases(app: App) -> list[Case]:
    with app.db.session() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))
