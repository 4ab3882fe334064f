"""The operator's interface: commands, exit statuses, and the stable --json contract."""

from __future__ import annotations

import argparse
import json
import mailbox
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailbot.cli import build_parser, main, secrets_used
from tests import factories
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

CASE_KEYS = {"id", "status", "reporter", "subject", "received_at", "ack_due", "acknowledged_at",
             "assessment_due", "assessed_at", "message_count", "flags"}
MESSAGE_KEYS = {"direction", "kind", "from", "to", "message_id", "date"}


def write_config(tmp_path: Path, *, imap_port: int = 1, smtp_port: int = 1,
                 username: str = "security@example.test", extra: str = "") -> Path:
    config = tmp_path / "mailbot.toml"
    config.write_text(f"""
[mailbox]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{username}"
password_env = "TEST_IMAP_PASSWORD"
poll_seconds = 1
answer_existing = true
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Example Security <security@example.test>"
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"
[team]
addresses = ["alice@team.example.test"]
authserv_id = "mx.example.test"
[policy]
timezone = "Europe/Amsterdam"
[oncall]
addresses = ["oncall@team.example.test"]
{extra}
""")
    return config


def test_a_cli_typo_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["cases", "lsit"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "invalid choice" in err
    assert "Traceback" not in err


def test_a_bad_config_names_the_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path, extra="timezone_typo = 1")
    config.write_text(config.read_text().replace('timezone = "Europe/Amsterdam"',
                                                 'timezone = "Mars/Base"'))
    assert main(["--config", str(config), "cases", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mailbot: config error: ")
    assert len(err.splitlines()) == 1


def test_an_unknown_case_id_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    assert main(["--config", str(config), "migrate"]) == 0
    assert main(["--config", str(config), "cases", "show", "SEC-1999-0001"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mailbot: error: no case 'SEC-1999-0001'; `mailbot cases list` shows the ids")


def test_cases_commands_ask_for_a_migrated_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    assert main(["--config", str(config), "cases", "list"]) == 2
    assert "run: mailbot migrate" in capsys.readouterr().err


def test_run_once_then_cases_list_and_show_speak_the_json_contract(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_port=imap_account.imap_port, smtp_port=smtp_sink.port,
                          username=imap_account.username)
    assert imap_account.server is not None
    imap_account.server.deliver(imap_account, factories.message(message_id="<cli-1@r.example>"))

    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "1 new cases" in capsys.readouterr().out

    assert main(["--config", str(config), "cases", "list", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)
    assert set(case) >= CASE_KEYS
    assert case["status"] == "new"
    assert case["message_count"] == 2
    assert case["received_at"].endswith("+00:00")

    assert main(["--config", str(config), "cases", "show", case["id"], "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert set(detail) >= CASE_KEYS
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    for m in detail["messages"]:
        assert set(m) >= MESSAGE_KEYS
    assert detail["messages"][0]["message_id"] == "<cli-1@r.example>"
    assert detail["events"][0]["action"] == "opened"

    assert main(["--config", str(config), "cases", "ack", case["id"]]) == 0
    assert capsys.readouterr().out.strip() == f"{case['id']}: acknowledged"
    assert main(["--config", str(config), "cases", "list", "--status", "acknowledged",
                 "--json"]) == 0
    [acked] = json.loads(capsys.readouterr().out)
    assert acked["acknowledged_at"] is not None
    assert acked["assessment_due"] is not None


def test_case_commands_and_health_run_without_the_mailbox_and_smtp_secrets(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_port=imap_account.imap_port, smtp_port=smtp_sink.port,
                          username=imap_account.username)
    assert imap_account.server is not None
    imap_account.server.deliver(imap_account, factories.message(message_id="<cli-s@r.example>"))
    assert main(["--config", str(config), "run", "--once"]) == 0
    capsys.readouterr()

    # On on-call's machine: the config and the database, no IMAP password.
    monkeypatch.delenv("TEST_IMAP_PASSWORD")
    assert main(["--config", str(config), "cases", "list", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)
    assert main(["--config", str(config), "cases", "show", case["id"]]) == 0
    assert main(["--config", str(config), "cases", "ack", case["id"]]) == 0
    assert main(["--config", str(config), "health"]) == 0  # `run --once` ran here, read it
    assert "mailbox: read by" in capsys.readouterr().out
    # What does speak IMAP still wants the password, and says which key.
    assert main(["--config", str(config), "run", "--once"]) == 2
    assert "mailbox.password_env" in capsys.readouterr().err


def test_run_once_with_smtp_down_says_in_its_summary_what_its_warning_says(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap_account.password)
    config = write_config(tmp_path, imap_port=imap_account.imap_port, smtp_port=smtp_sink.port,
                          username=imap_account.username)
    assert imap_account.server is not None
    imap_account.server.deliver(imap_account, factories.message(message_id="<cli-o@r.example>"))
    smtp_sink.stop()

    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "outbox: 0 sent, 1 waiting for a retry, 0 failed" in capsys.readouterr().out
    assert "1 message(s) wait for the next try" in caplog.text


def test_each_command_reads_only_the_server_secrets_it_uses() -> None:
    assert secrets_used("cases", "list") == secrets_used("health") == frozenset()
    assert secrets_used("quarantine", "retry") == secrets_used("report") == frozenset()
    assert secrets_used("deadlines", "check") == {"smtp"}
    assert secrets_used("run") == secrets_used("check") == {"mailbox", "smtp"}


def test_ingest_reads_eml_and_mbox_files_and_twice_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    eml = tmp_path / "one.eml"
    eml.write_bytes(factories.message(sender="a@r.example"))
    box = mailbox.mbox(tmp_path / "more.mbox")
    for i in range(3):
        box.add(factories.message(sender=f"b{i}@r.example"))
    box.close()

    assert main(["--config", str(config), "ingest", str(eml), str(tmp_path / "more.mbox")]) == 0
    assert capsys.readouterr().out.strip() == "4 opened"
    assert main(["--config", str(config), "ingest", str(eml)]) == 0
    assert capsys.readouterr().out.strip() == "1 duplicate"


def test_cases_show_text_is_one_line_per_entry_ending_in_one_newline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    eml = tmp_path / "one.eml"
    eml.write_bytes(factories.message(sender="a@r.example"))
    assert main(["--config", str(config), "ingest", str(eml)]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "close", "SEC-2026-0001", "spam"]) == 0
    capsys.readouterr()

    assert main(["--config", str(config), "cases", "show", "SEC-2026-0001"]) == 0
    out = capsys.readouterr().out

    assert out.endswith("\n") and not out.endswith("\n\n")
    lines = out.split("\n")[:-1]
    assert lines[0] == "SEC-2026-0001  closed"  # no flags, no padding after the status
    assert [line for line in lines if line != line.rstrip()] == []
    assert any(line.split()[-2:] == ["closed", "reason=spam"] for line in lines)
    assert lines[-1].split()[-2:] == ["command=/close", "spam"]


def test_ingest_of_a_missing_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    assert main(["--config", str(config), "ingest", str(tmp_path / "nope.eml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_help_runs_as_a_console_command() -> None:
    done = subprocess.run([sys.executable, "-m", "mailbot", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    for command in ("run", "migrate", "check", "ingest", "cases", "deadlines", "demo"):
        assert command in done.stdout


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases: once each
                found.append(child)
                found.extend(_subparsers(child))
    return found


def test_every_subcommand_help_has_a_description_and_every_argument_a_help_text() -> None:
    missing = []
    for parser in _subparsers(build_parser()):
        if not parser.description:
            missing.append(f"{parser.prog}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_the_missing_config_message_points_at_the_example_and_at_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_CONFIG", raising=False)
    assert main(["cases", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "config.example.toml" in err and "--config PATH" in err


def test_check_connects_to_every_server_and_says_what_is_wrong(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, imap_port=imap_account.imap_port, smtp_port=smtp_sink.port,
                          username=imap_account.username)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap_account.password)
    # A new database is no problem: `run` migrates it on start. check says so as a note.
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "database: ok" in out
    assert "database: note: empty (no mailbot schema yet): `mailbot run` creates it" in out

    assert main(["--config", str(config), "migrate"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "check"]) == 0
    out = capsys.readouterr().out
    for name in ("config", "database", "imap", "smtp"):
        assert f"{name}: ok" in out
    assert "database: note" not in out

    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong")
    smtp_sink.stop()
    assert main(["--config", str(config), "check"]) == 1
    out = capsys.readouterr().out
    assert "imap: ok" not in out
    assert "smtp: ok" not in out
    assert "database: ok" in out


def test_demo_runs_on_its_embedded_servers(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pymap")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "4 cases opened, 3 receipts sent" in out
    assert "assessed" in out
    # The days pass on a fixed clock: the same reminder and escalation on every run.
    assert ("Subject: [SEC-2026-0002] At risk: acknowledgement due Thursday 26 November 2026, "
            "23:59 CET (13 hours 29 minutes left)") in out
    assert ("Subject: [SEC-2026-0002] OVERDUE: acknowledgement was due Thursday 26 November "
            "2026, 23:59 CET (overdue by 10 hours 30 minutes)") in out
    assert "2 reminder(s) and 2 escalation(s) to on-call" in out


def test_check_names_an_override_template_that_does_not_compile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "receipt.txt.j2").write_text("Hello {{ case_id }\n")
    config = write_config(tmp_path, extra=f'[templates]\ndirectory = "{overrides}"\n')

    assert main(["--config", str(config), "check"]) == 1
    assert "templates: receipt.txt.j2: " in capsys.readouterr().out


def test_ingest_goes_on_past_a_message_that_breaks_intake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbot.intake import pipeline
    from mailbot.intake.classify import classify as real_classify

    def exploding_classify(msg: object, folder: str, settings: object, **signed: Any) -> object:
        if "poison" in getattr(msg, "subject", ""):
            raise RuntimeError("boom")
        return real_classify(msg, folder, settings, **signed)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "classify", exploding_classify)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = write_config(tmp_path)
    files = []
    for i, subject in enumerate(["fine", "poison", "also fine"]):
        files.append(tmp_path / f"{i}.eml")
        files[-1].write_bytes(factories.message(sender=f"r{i}@r.example", subject=subject))

    assert main(["--config", str(config), "ingest", *map(str, files)]) == 1
    assert capsys.readouterr().out.strip() == "1 failed, 2 opened"
