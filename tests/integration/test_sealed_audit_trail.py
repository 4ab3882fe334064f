"""The credit name, the audit trail's details and the failure records are sealed too.

A reporter's ``/credit "Name"`` lands in ``cases.credit`` and in the events' details; an error
text can quote the message that caused it (``inbound_failures.last_error``). Through the real
servers: neither mark reaches the SQLite file (nor its write-ahead log) nor a PostgreSQL dump, and
both read back for the operator. A damaged value is shown as unreadable, never a traceback.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbot.app import App
from mailbot.cases.service import get_case
from mailbot.cases.views import UNREADABLE, case_detail
from mailbot.intake import pipeline
from mailbot.intake.classify import classify as real_classify
from mailbot.quarantine.service import list_quarantined
from mailbot.quarantine.service import retry as retry_quarantined
from mailbot.web.board import BoardQuery, board
from tests import factories, mailflow
from tests.integration.test_encryption_at_rest import encodings
from tests.mailflow import REPORTER, SECURITY, Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.postgres import PostgresServer
from tests.servers.smtp_sink import SmtpSink

CREDIT_MARK = "Zqxcreditmark7"
ERROR_MARK = "Zqxerrormark7"


def assert_no_mark(blob: bytes, where: str) -> None:
    for mark in (CREDIT_MARK, ERROR_MARK):
        for form in encodings(mark):
            assert form not in blob, f"{mark} found in {where} as {form!r}"


def credit_and_failure(flow: Mailflow, monkeypatch: pytest.MonkeyPatch) -> str:
    """A report whose reporter answers the receipt with a marked ``/credit``, and a message
    whose failure (three times, then quarantined) quotes its marked subject; the case id."""
    case, _ = flow.open_report()
    receipt = flow.receipt_id(case.id)
    flow.deliver(mailflow.raw(
        [("From", REPORTER), ("To", SECURITY), ("Subject", "Re: your security report"),
         ("In-Reply-To", receipt), ("References", receipt)],
        f'/credit "Rita {CREDIT_MARK}, Example Labs"\n\nThanks!\n'))
    flow.run()

    def quoting_classify(msg: Any, folder: str, s: Any, **signed: Any) -> Any:
        if "poison" in msg.subject:  # as a library's error would quote a header
            raise ValueError(f"cannot classify {msg.subject!r}")
        return real_classify(msg, folder, s, **signed)

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "classify", quoting_classify)
        flow.deliver(factories.message(subject=f"poison {ERROR_MARK}", sender=REPORTER))
        for _ in range(3):
            flow.run()
    return case.id


def read_back(app: App, case_id: str) -> tuple[dict[str, Any], str]:
    """What the operator sees: the case as ``cases show --json`` has it, and the quarantine's
    error text."""
    with app.db.session() as session:
        case = get_case(session, case_id)
        assert case is not None
        shown = case_detail(session, case)
    [entry] = list_quarantined(app.db)
    return shown, entry.error


def assert_read_back(app: App, case_id: str) -> None:
    shown, error = read_back(app, case_id)
    assert shown["credit"] == f"Rita {CREDIT_MARK}, Example Labs"
    assert shown["credit_consent"] == "named"
    [credit] = [e for e in shown["events"] if e["action"] == "credit"]
    assert credit["detail"]["name"] == f"Rita {CREDIT_MARK}, Example Labs"
    assert ERROR_MARK in error


@pytest.fixture
def sqlite_flow(tmp_path: Path, imap_account: ImapAccount,
                smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def test_credit_and_error_texts_never_reach_the_sqlite_file_or_its_log(
    tmp_path: Path, sqlite_flow: Mailflow, monkeypatch: pytest.MonkeyPatch,
) -> None:
    case_id = credit_and_failure(sqlite_flow, monkeypatch)
    assert_read_back(sqlite_flow.app, case_id)
    files = [f for f in tmp_path.glob("mailbot.db*")]
    assert any(f.name == "mailbot.db-wal" for f in files)  # the log is looked at while open
    for f in files:
        assert_no_mark(f.read_bytes(), f.name)


def test_an_error_text_quoting_the_mail_stays_out_of_mailbots_log(
    sqlite_flow: Mailflow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailbot")
    case_id = credit_and_failure(sqlite_flow, monkeypatch)
    [entry] = list_quarantined(sqlite_flow.app.db)

    def still_failing(msg: Any, *_: Any, **__: Any) -> Any:
        raise ValueError(f"cannot classify {msg.subject!r}")

    monkeypatch.setattr(pipeline, "classify", still_failing)
    retried = retry_quarantined(sqlite_flow.app.db, sqlite_flow.app.intake, entry.id)
    assert retried.outcome == "failed"
    failures = [r for r in caplog.records if "failed" in r.getMessage() and r.levelname == "ERROR"]
    assert len(failures) == 4 and all("ValueError" in r.getMessage() for r in failures)
    assert "quoting_classify" in caplog.text  # where it failed is still told (the frames)
    assert ERROR_MARK not in caplog.text
    assert_read_back(sqlite_flow.app, case_id)  # the whole text is kept, sealed


def test_credit_and_error_texts_never_reach_a_postgresql_dump(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, pg_url: str,
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(), database_url=pg_url)
    app = factories.app(settings)
    try:
        case_id = credit_and_failure(Mailflow(app, imap_account, smtp_sink), monkeypatch)
        assert_read_back(app, case_id)
    finally:
        app.close()
    command = [str(postgres_server.bin_dir / "pg_dump"), "-h", "127.0.0.1",
               "-p", str(postgres_server.port), "-U", "postgres", pg_url.rsplit("/", 1)[1]]
    dump = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    assert b"inbound_failures" in dump and b"COPY public.events" in dump
    assert_no_mark(dump, "pg_dump")


def test_a_damaged_credit_event_or_error_text_is_shown_as_unreadable(
    tmp_path: Path, sqlite_flow: Mailflow, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    case_id = credit_and_failure(sqlite_flow, monkeypatch)
    with sqlite3.connect(tmp_path / "mailbot.db") as conn:
        for table, column, where in (("cases", "credit", f"id = '{case_id}'"),
                                     ("events", "detail", "action = 'credit'"),
                                     ("events", "source", "action = 'credit'"),
                                     ("inbound_failures", "last_error", "1 = 1")):
            (stored,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
            flipped = bytearray(stored)
            flipped[-1] ^= 0x01
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (bytes(flipped),))
    sqlite_flow.app.db.engine.dispose()  # nothing cached from before the damage
    shown, error = read_back(sqlite_flow.app, case_id)
    assert shown["credit"] == UNREADABLE
    [credit] = [e for e in shown["events"] if e["action"] == "credit"]
    assert credit["detail"] == {"detail": UNREADABLE} and credit["source"] == UNREADABLE
    assert error == UNREADABLE
    assert shown["subject"] != UNREADABLE  # the rest of the case still opens
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(case_id in e and "credit" in e for e in errors)
    # The web's case page: the same words where the values were, and the page still renders.
    html = web_case_page(sqlite_flow.app, case_id)
    assert html.count(UNREADABLE) == 2  # the credit and the event's detail (no source shown)


def web_case_page(app: App, case_id: str) -> str:
    from mailbot.cases.models import Case
    from mailbot.web.casepage import case_page
    from mailbot.web.render import environment

    now = app.clock.now()
    with app.db.session() as session:
        case = session.get(Case, case_id)
        assert case is not None
        page = case_page(session, case, app.db.raw_store, app.calendar, app.settings.policy, now)
    template = environment(app.calendar.tz).get_template("case.html")
    return template.render(page=page, user="alice", csrf="x", now=now)


def test_a_damaged_subject_or_message_record_still_leaves_the_web_pages_readable(
    tmp_path: Path, sqlite_flow: Mailflow, caplog: pytest.LogCaptureFixture,
) -> None:
    case, _ = sqlite_flow.open_report(subject="Heap overflow in the parser")
    with sqlite3.connect(tmp_path / "mailbot.db") as conn:
        for table, column, where in (("cases", "subject", f"id = '{case.id}'"),
                                     ("messages", "subject", f"case_id = '{case.id}'"),
                                     ("messages", "details", f"case_id = '{case.id}'")):
            (stored,) = conn.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
            flipped = bytearray(stored)
            flipped[-1] ^= 0x01
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (bytes(flipped),))
    sqlite_flow.app.db.engine.dispose()

    html = web_case_page(sqlite_flow.app, case.id)
    # The case's subject and both messages' (the report, and our receipt given its bytes).
    assert html.count(UNREADABLE) == 3
    assert "Heap overflow" not in html
    with sqlite_flow.app.db.session() as session:  # the board lists it with the same words
        found = board(session, BoardQuery(), sqlite_flow.app.calendar,
                      sqlite_flow.app.settings.policy, sqlite_flow.app.clock.now())
    assert [(r.id, r.subject) for r in found.rows] == [(case.id, UNREADABLE)]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(case.id in e and "details" in e for e in errors)
