"""The disclosure date and the keep-the-reporter-informed clock, on the real servers.

Mail goes through Dovecot (LMTP in) and the SMTP sink (out); the watch runs with a fixed clock
set to chosen instants around the dates the team's commands recorded. Each reminder and each
escalation reaches on-call exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases.models import Reminder
from mailbot.clock import FixedClock
from tests import factories
from tests.integration.test_commands import send_commands
from tests.mailflow import REPORTER, Mailflow, team_reply
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import ReceivedMail, SmtpSink

ONCALL = "oncall@team.example.test"


def flow_with(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, **policy: Any
) -> Iterator[Mailflow]:
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(), **policy)
    app = factories.app(settings, clock=FixedClock(datetime.now(UTC)))
    try:
        yield Mailflow(app, imap_account, smtp_sink)
    finally:
        app.close()


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from flow_with(tmp_path, imap_account, smtp_sink)


@pytest.fixture
def disclosing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> Iterator[Mailflow]:
    """Only the disclosure clock: the update reminders would come in between."""
    yield from flow_with(tmp_path, imap_account, smtp_sink, update_interval_business_days=0)


def at(app: App, day: date, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` on ``day`` in the team's timezone."""
    return datetime.combine(day, time(hour, minute), tzinfo=app.calendar.tz)


def run_at(flow: Mailflow, when: datetime) -> int:
    clock = flow.app.clock
    assert isinstance(clock, FixedClock)
    clock.set(when)
    return flow.run().reminders


def to_oncall(flow: Mailflow, kind: str) -> list[ReceivedMail]:
    return [m for m in flow.sink.received if m.rcpt_tos == (ONCALL,) and kind_of(m) == kind]


def kind_of(mail: ReceivedMail) -> str:
    subject = str(mail.message["Subject"])
    if "DISCLOSURE DATE REACHED" in subject:
        return "disclosure-escalation"
    if "Disclosure on" in subject:
        return "disclosure-reminder"
    if "Update the reporter" in subject:
        return "update-reminder"
    return "other"


def disclosed_case(flow: Mailflow, day: date) -> tuple[str, str]:
    case, report_id = flow.open_report()
    send_commands(flow, report_id, f"/assess severity=high\n/disclose {day.isoformat()}\n")
    assert flow.case(case.id).disclosure_date == day
    return case.id, report_id


def test_disclosure_reminder_then_escalation_exactly_once_each(disclosing: Mailflow) -> None:
    flow = disclosing
    calendar = flow.app.calendar
    day = calendar.business_days_after(calendar.local_date(datetime.now(UTC)), 12)
    case_id, report_id = disclosed_case(flow, day)
    warn_day = calendar.last_business_days(day - timedelta(days=1), 5)  # the default: 5

    assert run_at(flow, at(flow.app, warn_day, 8, 59) - timedelta(days=1)) == 0
    assert run_at(flow, at(flow.app, warn_day, 7)) == 0  # the day, but before business hours
    assert run_at(flow, at(flow.app, warn_day, 10)) == 1
    assert run_at(flow, at(flow.app, warn_day, 11)) == 0
    assert run_at(flow, at(flow.app, day - timedelta(days=1), 16)) == 0
    [reminder] = to_oncall(flow, "disclosure-reminder")
    assert case_id in str(reminder.message["Subject"])
    assert day.isoformat() in str(reminder.message["Subject"])
    assert report_id in str(reminder.message["References"])
    text = " ".join(reminder.message.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert "cases advisory" in text and "unknown: the reporter has not said" in text

    # The date arrives at local midnight while the case is still assessed: at once, once.
    assert run_at(flow, at(flow.app, day, 0, 5)) == 1
    assert run_at(flow, at(flow.app, day, 10)) == 0
    assert run_at(flow, at(flow.app, day, 0, 5) + timedelta(days=3)) == 0
    [escalation] = to_oncall(flow, "disclosure-escalation")
    assert case_id in str(escalation.message["Subject"])
    assert len(to_oncall(flow, "disclosure-reminder")) == 1
    rows = [(e.deadline, e.stage) for e in reminders(flow)]
    assert rows == [("disclosure", f"coming {day}"), ("disclosure", f"reached {day}")]


def test_no_escalation_for_a_resolved_case_and_a_new_date_gets_its_own(
    disclosing: Mailflow,
) -> None:
    flow = disclosing
    calendar = flow.app.calendar
    today = calendar.local_date(datetime.now(UTC))
    day = calendar.business_days_after(today, 12)
    case_id, report_id = disclosed_case(flow, day)
    later = calendar.business_days_after(today, 30)
    send_commands(flow, report_id, f"/disclose {later.isoformat()}\n")

    assert run_at(flow, at(flow.app, day, 10)) == 0  # the old date: nothing
    warn_day = calendar.last_business_days(later - timedelta(days=1), 5)
    assert run_at(flow, at(flow.app, warn_day, 10)) == 1
    send_commands(flow, report_id, "/resolve\n")
    assert flow.case(case_id).status == "resolved"
    assert run_at(flow, at(flow.app, later, 0, 5)) == 0  # resolved: the date is no alarm
    assert len(to_oncall(flow, "disclosure-reminder")) == 1
    assert to_oncall(flow, "disclosure-escalation") == []


def test_the_update_clock_reminds_once_per_interval(flow: Mailflow) -> None:
    calendar = flow.app.calendar
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/assess severity=medium\n")
    assessed = flow.case(case.id)
    assert assessed.assessed_at is not None
    first_due = calendar.add_business_days(assessed.assessed_at, 20)
    assert assessed.update_due == first_due
    due_day = calendar.local_date(first_due)
    next_day = calendar.business_days_after(due_day, 1)

    assert run_at(flow, at(flow.app, due_day, 16)) == 0  # still within the interval
    assert run_at(flow, at(flow.app, next_day, 6)) == 0  # outside business hours
    assert run_at(flow, at(flow.app, next_day, 9, 30)) == 1
    assert run_at(flow, at(flow.app, next_day, 15)) == 0
    second_due = flow.case(case.id).update_due
    assert second_due == calendar.add_business_days(at(flow.app, next_day, 9, 30), 20)
    assert run_at(flow, at(flow.app, calendar.local_date(second_due), 12)) == 0
    assert second_due is not None
    after_second = calendar.business_days_after(calendar.local_date(second_due), 1)
    assert run_at(flow, at(flow.app, after_second, 10)) == 1
    [first, second] = to_oncall(flow, "update-reminder")
    assert case.id in str(first.message["Subject"])
    assert first.message["Message-ID"] != second.message["Message-ID"]
    text = " ".join(first.message.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert "20 business days" in text and "never mails the reporter" in text
    # On-call only: the reporter got the receipt and the team's own mail, nothing automatic.
    assert [m for m in flow.sink.received if REPORTER in m.rcpt_tos
            and "Update" in str(m.message["Subject"])] == []


def test_the_teams_mail_to_the_reporter_restarts_the_update_clock(flow: Mailflow) -> None:
    calendar = flow.app.calendar
    case, report_id = flow.open_report()
    send_commands(flow, report_id, "/assess severity=medium\n")
    first_due = flow.case(case.id).update_due
    assert first_due is not None

    # Internal mail (to security@ only) is no news for the reporter.
    send_commands(flow, report_id, "Internal note: the fix is in review.\n")
    assert flow.case(case.id).update_due == first_due

    flow.deliver(team_reply(answering=report_id, body="The fix ships next week.\n"))
    flow.run()
    [reply] = [m for m in flow.inbound(case.id) if m.kind == "team"][-1:]
    assert flow.case(case.id).update_due == calendar.add_business_days(reply.received_at, 20)


def test_no_update_reminder_when_the_interval_is_off(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    for flow in flow_with(tmp_path, imap_account, smtp_sink, update_interval_business_days=0):
        case, report_id = flow.open_report()
        send_commands(flow, report_id, "/assess severity=low\n")
        assert flow.case(case.id).update_due is None
        later = flow.app.calendar.local_date(datetime.now(UTC)) + timedelta(days=90)
        later = flow.app.calendar.business_days_after(later, 1)
        assert run_at(flow, at(flow.app, later, 10)) == 0


def reminders(flow: Mailflow) -> list[Reminder]:
    with flow.app.db.session() as s:
        return list(s.scalars(select(Reminder).order_by(Reminder.id)))
