"""A backfill: every effect of a message is stamped with the time the message arrived.

``mailbot ingest`` of an old mailbox (like a daemon catching up after a day down) processes mail
long after it arrived. The report's deadlines, the team's commands and the events they leave all
count from each message's arrival, not from the day mailbot got round to it.
"""

from __future__ import annotations

import json
import mailbox
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.cli import main
from tests import factories
from tests.integration.test_cli import write_config
from tests.mailflow import PASS, REPORTER, SECURITY, TEAM_MEMBER, raw

AMS = ZoneInfo("Europe/Amsterdam")
REPORTED = datetime(2026, 11, 17, 10, 0, tzinfo=AMS)     # a Tuesday
ACKED = datetime(2026, 11, 18, 11, 0, tzinfo=AMS)        # the next day, by /ack
ASSESSED = datetime(2026, 11, 26, 15, 30, tzinfo=AMS)    # by /assess, a week later


def _team_note(body: str, answering: str, when: datetime, message_id: str) -> bytes:
    """A team member's note to security@ only (so it is no acknowledgement by itself)."""
    return raw([("Authentication-Results", PASS), ("From", f"Alice <{TEAM_MEMBER}>"),
                ("To", SECURITY), ("Subject", "Re: XSS in the login form"),
                ("In-Reply-To", answering), ("References", answering)],
               body, message_id=message_id, date=when)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(AMS)


def test_an_ingested_mailbox_keeps_each_message_s_own_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    # write_config sets answer_existing: old mail is answered and its deadlines started (not
    # imported without any), so they must be started from the right days.
    config = write_config(tmp_path)
    report_id = "<old-report@reporter.example>"
    box = mailbox.mbox(tmp_path / "old.mbox")
    box.add(factories.message(sender=f"Rita <{REPORTER}>", message_id=report_id, date=REPORTED))
    box.add(_team_note("/ack\n", report_id, ACKED, "<old-ack@team.example.test>"))
    box.add(_team_note("/assess severity=high target=2026-12-15\n", report_id, ASSESSED,
                       "<old-assess@team.example.test>"))
    box.close()

    assert main(["--config", str(config), "ingest", str(tmp_path / "old.mbox")]) == 0
    assert capsys.readouterr().out.strip() == "2 added, 1 opened"
    assert main(["--config", str(config), "cases", "list", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)
    assert main(["--config", str(config), "cases", "show", case["id"], "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)

    assert _at(detail["received_at"]) == REPORTED
    assert _at(detail["ack_due"]).date().isoformat() == "2026-11-20"  # Wed, Thu, Fri
    assert _at(detail["acknowledged_at"]) == ACKED
    # 7 business days from the day after 2026-11-18: 19, 20, 23, 24, 25, 26, 27
    assert _at(detail["assessment_due"]).date().isoformat() == "2026-11-27"
    assert _at(detail["assessed_at"]) == ASSESSED
    events = {e["action"]: _at(e["at"]) for e in detail["events"]}
    assert events["opened"] == REPORTED
    assert events["acknowledged"] == ACKED
    assert events["assessed"] == ASSESSED
    commands = [_at(e["at"]) for e in detail["events"] if e["action"] == "command"]
    assert commands == [ACKED, ASSESSED]
