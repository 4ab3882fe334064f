"""Delete on demand, retention, export: a purged case keeps its skeleton and loses its content."""

from __future__ import annotations

import asyncio
import base64
import json
import mailbox
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.mail.imap import ImapMailbox
from tests import daemons, factories
from tests.integration.test_cli import write_config
from tests.integration.test_encryption_at_rest import (
    BODY_MARK,
    FILE_MARK,
    SUBJECT_MARK,
    encodings,
    report,
)
from tests.servers.dovecot import ImapAccount
from tests.servers.postgres import PostgresServer
from tests.servers.smtp_sink import SmtpSink

CASE = "SEC-2026-0001"
CREDIT_MARK = "Zqxcreditmark7"


def marks(n: int) -> list[str]:
    return [f"{SUBJECT_MARK}{n}", f"{BODY_MARK}{n}", f"{FILE_MARK}{n}"]


def visible(n: int) -> list[str]:
    """The marks a database in clear shows as they are (the raw bytes are compressed)."""
    return [f"{SUBJECT_MARK}{n}", f"{FILE_MARK}{n}"]


def found_in_database(tmp_path: Path, mark: str) -> bool:
    forms = encodings(mark)
    for f in tmp_path.glob("cli.db*"):
        if f.suffix != ".key":
            data = f.read_bytes()
            if any(form in data for form in forms):
                return True
    return False


@pytest.fixture
def clear_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Encryption off, so that erasing is what keeps the content out of the file."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path, extra='[storage]\nencryption = "off"\n'
                                          '[retention]\npurge_closed_after_days = 30\n')
    files = []
    for n in range(3):
        path = tmp_path / f"report{n}.eml"
        path.write_bytes(report(n))
        files.append(str(path))
    assert main(["--config", str(config), "ingest", *files]) == 0
    return config


def cli_json(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> object:
    capsys.readouterr()
    assert main(["--config", str(config), *argv]) == 0
    return json.loads(capsys.readouterr().out)


def sla(capsys: pytest.CaptureFixture[str], config: Path) -> object:
    figures = cli_json(capsys, config, "report", "--since", "2026-11-01", "--until",
                       "2026-11-30", "--format", "json")
    assert isinstance(figures, dict)
    figures.pop("generated_at", None)
    return figures


def test_purge_erases_the_content_and_keeps_the_skeleton(
    tmp_path: Path, clear_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = clear_config
    assert main(["--config", str(config), "cases", "ack", CASE]) == 0
    assert main(["--config", str(config), "cases", "credit", CASE, f"Rita {CREDIT_MARK}"]) == 0
    assert main(["--config", str(config), "cases", "credit", "SEC-2026-0002",
                 f"Ron {CREDIT_MARK}"]) == 0
    assert all(found_in_database(tmp_path, m) for m in visible(0))  # in clear: it can see
    assert found_in_database(tmp_path, f"Rita {CREDIT_MARK}")
    before = cli_json(capsys, config, "cases", "show", CASE, "--json")
    figures = sla(capsys, config)

    capsys.readouterr()
    assert main(["--config", str(config), "cases", "purge", CASE, "--yes"]) == 0
    assert f"{CASE}: purged" in capsys.readouterr().out

    for mark in (*marks(0), f"Rita {CREDIT_MARK}"):  # the credit: on the case and an event
        assert not found_in_database(tmp_path, mark), mark
    assert all(found_in_database(tmp_path, m) for m in visible(1))  # others keep theirs
    assert found_in_database(tmp_path, f"Ron {CREDIT_MARK}")
    after = cli_json(capsys, config, "cases", "show", CASE, "--json")
    assert isinstance(before, dict) and isinstance(after, dict)
    for key in ("id", "status", "reporter", "received_at", "ack_due", "acknowledged_at",
                "assessment_due", "message_count", "credit_consent"):
        assert after[key] == before[key], key
    assert after["subject"] == "" and "purged" in after["flags"]
    assert before["credit"] == f"Rita {CREDIT_MARK}" and after["credit"] is None
    # Each event keeps its time, actor and action; its detail is gone.
    kept = [(e["at"], e["actor"], e["action"]) for e in after["events"][:-1]]
    assert kept == [(e["at"], e["actor"], e["action"]) for e in before["events"]]
    assert all(e["detail"] == {"purged": True} for e in after["events"][:-1])
    assert all(m["subject"] == "" and m["text"] == "" for m in after["messages"])
    [purged] = [e for e in after["events"] if e["action"] == "purged"]
    assert purged["actor"].startswith("cli:")
    assert sla(capsys, config) == figures  # the report counts it as before


def test_purge_of_an_unknown_case_is_one_line_and_exit_2(
    clear_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--config", str(clear_config), "cases", "purge", "SEC-2026-0999", "--yes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SEC-2026-0999" in err and "Traceback" not in err


def test_purge_without_yes_asks_and_without_a_terminal_refuses(
    tmp_path: Path, clear_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(clear_config), "cases", "purge", CASE]) == 2
    assert "--yes" in capsys.readouterr().err
    assert all(found_in_database(tmp_path, m) for m in visible(0))


def test_retention_apply_purges_cases_closed_long_enough_ago(
    tmp_path: Path, clear_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = clear_config
    assert main(["--config", str(config), "cases", "close", CASE, "fixed"]) == 0
    soon = (datetime.now(UTC) + timedelta(days=29)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    capsys.readouterr()
    assert main(["--config", str(config), "retention", "apply", "--now", soon]) == 0
    assert capsys.readouterr().out.strip() == "nothing to purge"
    assert main(["--config", str(config), "retention", "apply", "--now", later, "--dry-run"]) == 0
    assert f"would purge {CASE}" in capsys.readouterr().out
    assert found_in_database(tmp_path, f"{SUBJECT_MARK}0")
    assert main(["--config", str(config), "retention", "apply", "--now", later]) == 0
    assert f"purged {CASE}" in capsys.readouterr().out
    assert not any(found_in_database(tmp_path, m) for m in marks(0))
    assert main(["--config", str(config), "retention", "apply", "--now", later]) == 0
    assert capsys.readouterr().out.strip() == "nothing to purge"  # once is enough


def test_export_hands_over_every_message_as_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)  # encrypted at rest; the export is decrypted
    # Dated now, so that it gets a receipt (an old report's receipt is withheld).
    raw = report(0).replace(b"Mon, 23 Nov 2026 10:00:00 +0100",
                            format_datetime(datetime.now(UTC)).encode())
    (tmp_path / "r.eml").write_bytes(raw)
    assert main(["--config", str(config), "ingest", str(tmp_path / "r.eml")]) == 0
    out = tmp_path / "case.mbox"
    assert main(["--config", str(config), "cases", "export", CASE, "--format", "mbox",
                 "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    box = mailbox.mbox(out, create=False)
    messages = list(box)
    box.close()
    assert len(messages) == 2  # the report, and the receipt mailbot sent
    assert BODY_MARK.encode() in messages[0].as_bytes()
    assert f"{SUBJECT_MARK}0" in str(messages[0]["Subject"])
    assert messages[1]["In-Reply-To"] == "<marked-0@reporter.example>"

    document = cli_json(capsys, config, "cases", "export", CASE, "--format", "json")
    assert isinstance(document, dict)
    assert document["id"] == CASE and SUBJECT_MARK in document["subject"]
    first = document["messages"][0]
    assert base64.b64decode(first["raw_base64"]) == raw
    assert BODY_MARK in first["text"]
    assert document["events"][0]["action"] == "opened"


def test_purge_with_purge_mailbox_deletes_the_case_mail_from_the_folders(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dovecot holds the report (INBOX) and another report; purge deletes only the first."""
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings())
    app = factories.app(settings)
    assert imap_account.server is not None
    for n in range(2):
        imap_account.server.deliver(imap_account, report(n).replace(
            b"Mon, 23 Nov 2026 10:00:00 +0100", format_datetime(datetime.now(UTC)).encode()))
    asyncio.run(app.run_once())
    app.close()
    config = daemons.write_config(
        tmp_path, imap_account.mailbox_settings(), smtp_sink.smtp_settings(),
        settings.database.url,
        extra={"storage": {"key_file": settings.storage.key_file},
               "retention": {"purge_mailbox": True}})
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "purge", CASE, "--yes"]) == 0
    assert "1 deleted from the mailbox" in capsys.readouterr().out
    with ImapMailbox(imap_account.mailbox_settings()) as mailbox:
        left = mailbox.fetch_uids("INBOX", mailbox.search_uids("INBOX"))
    assert len(left) == 1
    assert f"{SUBJECT_MARK}1".encode() in left[0].raw
    assert not any(f"{SUBJECT_MARK}0".encode() in m.raw for m in left)


def test_mailbox_keep_days_deletes_only_recorded_mail_older_than_that(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
) -> None:
    from mailbot.retention.mailbox import KeepDays

    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings())
    app = factories.app(settings)
    assert imap_account.server is not None
    for n in range(2):
        imap_account.server.deliver(imap_account, report(n))
    asyncio.run(app.run_once())  # both recorded as cases
    imap_account.server.deliver(imap_account, report(2))  # arrived, not yet read
    keep = KeepDays(settings.mailbox, app.credentials.imap)
    assert keep.apply(app.db, 30, datetime.now(UTC)) == 0  # nothing is 30 days old
    assert keep.apply(app.db, 30, datetime.now(UTC) + timedelta(days=32)) == 2
    with ImapMailbox(imap_account.mailbox_settings()) as mailbox:
        left = mailbox.fetch_uids("INBOX", mailbox.search_uids("INBOX"))
    assert [f"{SUBJECT_MARK}2".encode() in m.raw for m in left] == [True]  # the unread one
    asyncio.run(app.run_once())
    app.close()


def test_purge_on_postgresql_leaves_no_mark_in_a_dump(
    tmp_path: Path, pg_url: str, postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import subprocess

    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path, extra='[storage]\nencryption = "off"\n')
    config.write_text(config.read_text().replace(f"sqlite:///{tmp_path / 'cli.db'}", pg_url))
    files = []
    for n in range(2):
        (tmp_path / f"r{n}.eml").write_bytes(report(n))
        files.append(str(tmp_path / f"r{n}.eml"))
    assert main(["--config", str(config), "ingest", *files]) == 0
    assert main(["--config", str(config), "cases", "credit", CASE, f"Rita {CREDIT_MARK}"]) == 0

    def dump() -> bytes:
        command = [str(postgres_server.bin_dir / "pg_dump"), "-h", "127.0.0.1",
                   "-p", str(postgres_server.port), "-U", "postgres", pg_url.rsplit("/", 1)[1]]
        return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout

    before = dump()
    assert all(any(f in before for f in encodings(m)) for m in visible(0))  # in clear before
    assert any(f in before for f in encodings(CREDIT_MARK))
    assert main(["--config", str(config), "cases", "purge", CASE, "--yes"]) == 0
    after = dump()
    for mark in (*marks(0), CREDIT_MARK):
        assert not any(form in after for form in encodings(mark)), mark
    assert all(any(f in after for f in encodings(m)) for m in visible(1))
