"""Backfill without doubles: mail mailbot read over IMAP (real Dovecot), exported as .eml files and
as mboxes (Python's mailbox module, formail-style quoting), then fed to ``mailbot ingest``, makes
no second case and no second receipt; a message that was not there before still opens one."""

from __future__ import annotations

import email
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.cases.models import MailboxCursor, Outbox
from mailbot.cli import main
from tests import daemons, factories
from tests.mailflow import Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

LONG_AGO = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
BODY = "Steps to reproduce:\nFrom the login page, open /next.\n\nThanks  \n"


def _exports(tmp_path: Path, stored: list[bytes]) -> list[Path]:
    """What people make of a mailbox: .eml files (LF, a trailing blank line), an mbox written
    by Python's mailbox module from bytes and from parsed messages, a formail-style mbox."""
    files = []
    for n, raw in enumerate(stored):
        eml = tmp_path / f"export-{n}.eml"
        eml.write_bytes(raw.replace(b"\r\n", b"\n") + b"\n")
        files.append(eml)
    for name, as_message in (("bytes.mbox", False), ("parsed.mbox", True)):
        box = mailbox.mbox(tmp_path / name)
        for raw in stored:
            box.add(mailbox.mboxMessage(email.message_from_bytes(raw)) if as_message else raw)
        box.close()
        files.append(tmp_path / name)
    formail = tmp_path / "formail.mbox"
    with formail.open("wb") as out:
        for raw in stored:
            head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
            quoted = b"\n".join(b">" + line if line.startswith(b"From ") else line
                                for line in body.split(b"\n"))
            out.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + head + sep + quoted
                      + b"\n\n")
    files.append(formail)
    return files


def _outbox_size(flow: Mailflow) -> int:
    with flow.app.db.session() as s:
        return s.scalar(select(func.count()).select_from(Outbox)) or 0


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Mailflow:
    settings = factories.settings(
        tmp_path, imap_account.mailbox_settings(answer_existing=False), smtp_sink.smtp_settings()
    )
    return Mailflow(factories.app(settings), imap_account, smtp_sink)


def test_mail_read_over_imap_then_ingested_from_exports_opens_no_new_case(
    flow: Mailflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        for n in range(3):  # history, arrived over the years
            when = LONG_AGO + timedelta(days=200 * n)
            raw = factories.message(subject=f"Old report {n}", body=BODY, date=when)
            flow.account.server.append(flow.account, "INBOX", raw, internal_date=when)
        flow.run()
        flow.report(subject="A new report", body=BODY)  # after the first start, over LMTP
        flow.run()
        assert len(flow.cases()) == 4
        flow.mailed(1)  # the receipt for the new report, none for history
        with flow.account.client() as c:
            c.select_folder("INBOX", readonly=True)
            fetched = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
        stored = [data[b"BODY[]"] for _uid, data in sorted(fetched.items())]
        assert any(b"\r\nFrom the login page" in raw for raw in stored)
        (tmp_path / "exports").mkdir()
        files = _exports(tmp_path / "exports", stored)
        outbox_before = _outbox_size(flow)
        config = daemons.write_config(
            tmp_path, flow.app.settings.mailbox, flow.app.settings.smtp,
            flow.app.settings.database.url,
            extra={"storage": {"key_file": flow.app.settings.storage.key_file}})

        assert main(["--config", str(config), "ingest", *map(str, files)]) == 0
        assert capsys.readouterr().out.strip() == f"{len(stored) * 4} duplicate"  # 4 copies each
        assert len(flow.cases()) == 4
        assert _outbox_size(flow) == outbox_before

        # Two different messages are still two: one that was never in the mailbox opens a case.
        new = tmp_path / "exports" / "never-seen.eml"
        new.write_bytes(factories.message(subject="Never seen", body=BODY.replace("open", "post")))
        assert main(["--config", str(config), "ingest", str(new)]) == 0
        assert capsys.readouterr().out.strip() == "1 opened"
        assert len(flow.cases()) == 5
    finally:
        flow.app.close()


def test_ingest_imports_what_is_dated_before_the_first_start_and_answers_what_is_not(
    flow: Mailflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        flow.run()  # the first start on this mailbox: nothing there yet
        old = tmp_path / "old.eml"
        old.write_bytes(factories.message(subject="From an old archive", date=LONG_AGO))
        recent = tmp_path / "recent.eml"
        # Dated after the first start (Date headers count whole seconds: a minute on, to be sure).
        recent.write_bytes(factories.message(subject="Lost while we were down",
                                             date=datetime.now(UTC) + timedelta(minutes=1)))
        config = daemons.write_config(
            tmp_path, flow.app.settings.mailbox, flow.app.settings.smtp,
            flow.app.settings.database.url,
            extra={"storage": {"key_file": flow.app.settings.storage.key_file}})

        assert main(["--config", str(config), "ingest", str(old), str(recent)]) == 0
        assert capsys.readouterr().out.strip() == "2 opened"
        by_subject = {c.subject: c for c in flow.cases()}
        archived = by_subject["From an old archive"]
        assert "imported" in archived.flags and archived.ack_due is None
        assert "imported" not in by_subject["Lost while we were down"].flags
        with flow.app.db.session() as s:
            queued_for = list(s.scalars(select(Outbox.case_id)))
        assert queued_for == [by_subject["Lost while we were down"].id]  # its receipt alone
    finally:
        flow.app.close()


def test_a_mailbox_read_before_history_import_existed_imports_nothing_by_ingest(
    flow: Mailflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An older mailbot read this mailbox: it left a cursor, but no record of its first start.
    try:
        with flow.app.db.session() as s:
            s.add(MailboxCursor(folder="INBOX", uidvalidity=1, last_uid=10,
                                updated_at=datetime.now(UTC)))
        lost = tmp_path / "lost.eml"
        lost.write_bytes(factories.message(subject="Lost while we were down",
                                           date=datetime.now(UTC) - timedelta(days=1)))
        config = daemons.write_config(
            tmp_path, flow.app.settings.mailbox, flow.app.settings.smtp,
            flow.app.settings.database.url,
            extra={"storage": {"key_file": flow.app.settings.storage.key_file}})
        assert main(["--config", str(config), "ingest", str(lost)]) == 0
        assert capsys.readouterr().out.strip() == "1 opened"
        [case] = flow.cases()
        assert "imported" not in case.flags and case.ack_due is not None
    finally:
        flow.app.close()
