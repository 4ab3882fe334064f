"""The deadline watch over a case's life, on a real SQLite database (and PostgreSQL for two
instances at once): reminders and escalations are queued at the right moments, to the right
person, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases import service
from mailbot.cases.models import Case, Message, Outbox, Reminder
from mailbot.clock import FixedClock
from mailbot.config import (
    DatabaseSettings,
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    SecretsSettings,
    Settings,
    SmtpSettings,
    TeamSettings,
)
from mailbot.deadlines.watch import (
    at_risk_case_ids,
    at_risk_filter,
    digest_due,
    overdue_case_ids,
    overdue_filter,
    watch,
)
from mailbot.store import migrate
from tests import factories
from tests.servers.smtp_sink import SmtpSink

AMS = ZoneInfo("Europe/Amsterdam")
ALICE, BOB, CAROL = "alice@team.example.test", "bob@team.example.test", "carol@team.example.test"
# A daily rotation from Tuesday 3 November 2026: Wed 11 November is Carol's day, Thu 12 Alice's.
ROTATION = OncallSettings(
    rotation=(ALICE, BOB, CAROL), rotation_start=date(2026, 11, 3), rotation_days=1
)
# Reports below arrive on Friday 6 November 2026 at 16:00: acknowledgement due Wednesday 11
# November, end of day (Mon, Tue, Wed).
FRIDAY_REPORT = datetime(2026, 11, 6, 16, 0, tzinfo=AMS)
SYSTEM = service.Actor("mailbot", "test")


def ams(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=AMS)


def make_settings(
    url: str,
    *,
    smtp: SmtpSettings | None = None,
    oncall: OncallSettings = ROTATION,
    team: tuple[str, ...] = (ALICE,),
    **policy: Any,
) -> Settings:
    return Settings(
        mailbox=MailboxSettings(
            host="127.0.0.1", port=1, security="none", username="security@example.test"
        ),
        smtp=smtp
        or SmtpSettings(
            host="127.0.0.1",
            port=1,
            security="none",
            from_address="Security <security@example.test>",
        ),
        database=DatabaseSettings(url=url),
        team=TeamSettings(addresses=team, domains=("team.example.test",)),
        policy=dataclasses.replace(PolicySettings(timezone="Europe/Amsterdam"), **policy),
        oncall=oncall,
        secrets=SecretsSettings(token_key=b"test-token-key"),
        storage=factories.shared_storage(),
    )


def make_app(settings: Settings) -> App:
    app = App(settings, clock=FixedClock(FRIDAY_REPORT))
    migrate(app.db)
    return app


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[App]:
    app = make_app(make_settings(f"sqlite:///{tmp_path / 'mailbot.db'}"))
    yield app
    app.close()


def check(app: App, now: datetime) -> int:
    """``deadlines check --now``: the watch as if it were ``now``."""
    assert isinstance(app.clock, FixedClock)
    app.clock.set(now)
    return watch(app, now)


def open_report(
    app: App, received_at: datetime = FRIDAY_REPORT, *, message_id: str | None = None
) -> str:
    with app.db.session() as session:
        case_id = service.next_case_id(session, "SEC", received_at.year)
        service.open_case(
            session,
            case_id=case_id,
            reporter="rita@reporter.example",
            reporter_name="Rita Reporter",
            subject="XSS in the login form",
            received_at=received_at,
            ack_due=app.calendar.add_business_days(received_at, 3),
            flags=[],
            mentioned_tag="",
            actor=SYSTEM,
            now=received_at,
        )
        if message_id:
            session.add(
                Message(
                    case_id=case_id,
                    direction="in",
                    kind="report",
                    dedupe_key=f"test:{case_id}",
                    message_id=message_id,
                    from_addr="rita@reporter.example",
                    subject="XSS",
                    received_at=received_at,
                )
            )
    return case_id


def acknowledge(app: App, case_id: str, now: datetime) -> None:
    with app.db.session() as session:
        case = service.get_case(session, case_id)
        assert case is not None
        service.acknowledge(
            session,
            case,
            SYSTEM,
            now,
            lambda at: app.calendar.add_business_days(
                at, app.settings.policy.assessment_business_days
            ),
            explicit=True,
        )


def outbox(app: App) -> list[Outbox]:
    with app.db.session() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def reminders(app: App) -> list[tuple[str, str, str, str]]:
    with app.db.session() as session:
        rows = session.scalars(select(Reminder).order_by(Reminder.id))
        return [(r.case_id, r.deadline, r.stage, r.sent_to) for r in rows]


def parsed(row: Outbox) -> EmailMessage:
    msg = message_from_bytes(row.data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def text_of(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


# ---------------------------------------------------------------------------------------------
# A case's life


def test_one_reminder_in_business_hours_then_one_escalation_at_once(bot: App) -> None:
    case_id = open_report(bot)

    assert check(bot, ams(11, 9, 10)) == 0, "Monday: the deadline is far"
    assert check(bot, ams(11, 11, 7)) == 0, "Wednesday 07:00: at risk, but before business hours"
    assert outbox(bot) == []

    assert check(bot, ams(11, 11, 9, 30)) == 1, "Wednesday 09:30: in business hours"
    [row] = outbox(bot)
    assert (row.case_id, row.kind, row.recipients) == (case_id, "reminder", [CAROL])

    for later in (ams(11, 11, 9, 31), ams(11, 11, 16, 59), ams(11, 11, 23, 59)):
        assert check(bot, later) == 0, "repeated checks send no second reminder"

    assert check(bot, ams(11, 12, 0, 1)) == 1, "past the deadline at night: escalation at once"
    assert check(bot, ams(11, 12, 3)) == 0
    assert check(bot, ams(11, 13, 10)) == 0
    rows = outbox(bot)
    assert [(r.kind, r.recipients) for r in rows] == [
        ("reminder", [CAROL]),
        ("escalation", [ALICE]),
    ]
    assert reminders(bot) == [
        (case_id, "ack", "at-risk", CAROL),
        (case_id, "ack", "overdue", ALICE),
    ]


def test_reminder_and_escalation_say_what_on_call_needs(bot: App) -> None:
    case_id = open_report(bot)
    check(bot, ams(11, 11, 10))
    check(bot, ams(11, 12, 2))
    reminder, escalation = (parsed(r) for r in outbox(bot))

    assert reminder["Auto-Submitted"] == "auto-generated"
    assert escalation["Auto-Submitted"] == "auto-generated"
    assert f"[{case_id}]" in reminder["Subject"] and f"[{case_id}]" in escalation["Subject"]
    assert "At risk" in reminder["Subject"] and "OVERDUE" in escalation["Subject"]
    body = text_of(reminder)
    assert "Rita Reporter <rita@reporter.example>" in body
    # The report's subject stays out of mail to on-call ([policy] subjects_in_notifications).
    assert "XSS in the login form" not in body and "not in mail" in body
    assert "Wednesday 11 November 2026, 23:59 CET" in body, "the due time in the team's zone"
    assert "13 hours 59 minutes left" in body
    assert f"mailbot cases show {case_id}" in body
    assert "overdue by 2 hours" in text_of(escalation)


def test_reminder_message_ids_are_stable_per_case_deadline_and_stage(tmp_path: Path) -> None:
    first = make_app(make_settings(f"sqlite:///{tmp_path / 'a.db'}"))
    second = make_app(make_settings(f"sqlite:///{tmp_path / 'b.db'}"))
    try:
        for app in (first, second):
            open_report(app)
            check(app, ams(11, 11, 10))
            check(app, ams(11, 12, 2))
        ids = [[r.message_id for r in outbox(app)] for app in (first, second)]
    finally:
        first.close()
        second.close()
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 2


def test_acknowledging_stops_the_ack_reminders_and_starts_the_assessment_clock(bot: App) -> None:
    case_id = open_report(bot)
    acknowledge(bot, case_id, ams(11, 10, 10))  # Tuesday: assessment due Thursday 19 November

    assert check(bot, ams(11, 11, 10)) == 0, "the ack deadline would be at risk: no reminder"
    assert check(bot, ams(11, 12, 10)) == 0, "the ack deadline has passed: no escalation"
    assert check(bot, ams(11, 18, 23)) == 0, "the day before the assessment is due"

    assert check(bot, ams(11, 19, 9)) == 1, "the assessment is at risk on its due day"
    assert check(bot, ams(11, 19, 12)) == 0
    assert check(bot, ams(11, 20, 0, 30)) == 1, "and overdue after it"
    assert [(d, s) for _c, d, s, _to in reminders(bot)] == [
        ("assessment", "at-risk"),
        ("assessment", "overdue"),
    ]
    assert all(r.kind in ("reminder", "escalation") for r in outbox(bot))


def test_a_case_acknowledged_after_its_escalation_then_runs_the_assessment_clock(
    bot: App,
) -> None:
    case_id = open_report(bot)
    check(bot, ams(11, 11, 10))
    check(bot, ams(11, 12, 1))
    acknowledge(bot, case_id, ams(11, 12, 10))  # Thursday: assessment due Monday 23 November

    assert check(bot, ams(11, 20, 12)) == 0
    assert check(bot, ams(11, 23, 9, 5)) == 1
    assert reminders(bot)[-1][1:3] == ("assessment", "at-risk")


def test_only_open_cases_with_a_promise_are_watched(bot: App) -> None:
    resolved, closed, automatic = open_report(bot), open_report(bot), open_report(bot)
    with bot.db.session() as session:
        for case_id in (resolved, closed, automatic):
            case = session.get(Case, case_id)
            assert case is not None
            if case_id == resolved:
                service.resolve(session, case, SYSTEM, ams(11, 9, 10))
            elif case_id == closed:
                service.close(session, case, SYSTEM, ams(11, 9, 10), "spam")
            else:
                case.ack_due = None  # automatic mail is promised nothing
    assert check(bot, ams(11, 11, 10)) == 0
    assert check(bot, ams(11, 30, 10)) == 0
    assert outbox(bot) == []


def test_at_risk_reminders_missed_at_night_give_way_to_the_escalation(bot: App) -> None:
    # Business hours never came while the case was at risk (say, the daemon was down):
    # the at-risk reminder is moot once overdue; the escalation goes.
    open_report(bot)
    assert check(bot, ams(11, 12, 8)) == 1
    assert [r.kind for r in outbox(bot)] == ["escalation"]


def test_nobody_on_call_is_logged_once_per_run_and_nothing_is_queued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        make_settings(f"sqlite:///{tmp_path / 'm.db'}", oncall=OncallSettings(), team=())
    )
    try:
        open_report(app)
        open_report(app)
        with caplog.at_level(logging.ERROR, logger="mailbot.deadlines"):
            assert check(app, ams(11, 12, 10)) == 0
        assert outbox(app) == [] and reminders(app) == []
    finally:
        app.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "nobody" in errors[0].getMessage()


def test_without_on_call_the_team_gets_the_reminders(tmp_path: Path) -> None:
    app = make_app(
        make_settings(f"sqlite:///{tmp_path / 'm.db'}", oncall=OncallSettings(), team=(ALICE, BOB))
    )
    try:
        open_report(app)
        assert check(app, ams(11, 11, 10)) == 1
        assert outbox(app)[0].recipients == [ALICE, BOB]
    finally:
        app.close()


def test_many_cases_each_get_their_own_reminder(bot: App) -> None:
    ids = [open_report(bot, FRIDAY_REPORT + timedelta(minutes=i)) for i in range(25)]
    later = open_report(bot, ams(11, 10, 12))  # due Friday 13 November
    assert check(bot, ams(11, 11, 10)) == 25
    assert sorted(r.case_id for r in outbox(bot) if r.case_id) == ids
    assert later not in {r.case_id for r in outbox(bot)}


# ---------------------------------------------------------------------------------------------
# Queries for `cases list --at-risk` / `--overdue`


def test_at_risk_and_overdue_lists(bot: App) -> None:
    due_wednesday = open_report(bot)
    due_thursday = open_report(bot, ams(11, 9, 12))
    due_later = open_report(bot, ams(11, 11, 12))
    acknowledged = open_report(bot)
    acknowledge(bot, acknowledged, ams(11, 9, 12))
    calendar, policy = bot.calendar, bot.settings.policy
    with bot.db.session() as session:
        # Wednesday at 03:00: at risk whatever the hour (the list is not a reminder).
        assert at_risk_case_ids(session, calendar, policy, ams(11, 11, 3)) == [due_wednesday]
        assert overdue_case_ids(session, ams(11, 11, 3)) == []
        assert at_risk_case_ids(session, calendar, policy, ams(11, 12, 10)) == [due_thursday]
        assert overdue_case_ids(session, ams(11, 12, 10)) == [due_wednesday]
        assert overdue_case_ids(session, ams(11, 17, 10)) == [
            due_wednesday,
            due_thursday,
            due_later,
        ]
        # The same selections as WHERE clauses, for a list query of the CLI's own.
        for now in (ams(11, 11, 3), ams(11, 12, 10), ams(11, 17, 10), ams(11, 19, 12)):
            where = at_risk_filter(calendar, policy, now)
            assert sorted(session.scalars(select(Case.id).where(where))) == at_risk_case_ids(
                session, calendar, policy, now
            )
            where = overdue_filter(now)
            assert sorted(session.scalars(select(Case.id).where(where))) == overdue_case_ids(
                session, now
            )


# ---------------------------------------------------------------------------------------------
# The daily digest


def test_one_digest_per_business_day_from_its_time_on(tmp_path: Path) -> None:
    app = make_app(make_settings(f"sqlite:///{tmp_path / 'm.db'}", digest_time=time(8, 30)))
    try:
        overdue, at_risk = open_report(app), open_report(app, ams(11, 9, 12))
        acknowledged = open_report(app, ams(11, 10, 12))
        acknowledge(app, acknowledged, ams(11, 11, 9))

        assert digest_due(app, ams(11, 12, 8, 29)) == 0, "before the digest time"
        assert digest_due(app, ams(11, 12, 8, 30)) == 1
        assert digest_due(app, ams(11, 12, 8, 31)) == 0, "one per day"
        assert digest_due(app, ams(11, 12, 17)) == 0
        assert digest_due(app, ams(11, 14, 9)) == 0, "Saturday: no digest"
        assert digest_due(app, ams(11, 16, 8, 45)) == 1, "Monday's"
        rows = outbox(app)
    finally:
        app.close()
    assert [r.kind for r in rows] == ["digest", "digest"]
    assert rows[0].recipients == [ALICE], "Thursday's on-call"
    msg = parsed(rows[0])
    assert msg["Auto-Submitted"] == "auto-generated"
    body = text_of(msg)
    # Soonest deadline first: the overdue ack, the ack due today, then the assessment.
    positions = [body.index(case_id) for case_id in (overdue, at_risk, acknowledged)]
    assert positions == sorted(positions)
    assert "Overdue (1)" in body and "At risk (1)" in body and "Coming up (1)" in body


def test_no_digest_when_it_is_not_configured(bot: App) -> None:
    open_report(bot)
    assert digest_due(bot, ams(11, 12, 12)) == 0
    assert outbox(bot) == []


# ---------------------------------------------------------------------------------------------
# Real SMTP


def test_the_reminder_reaches_on_call_over_smtp(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", smtp=smtp_sink.smtp_settings())
    app = make_app(settings)
    try:
        case_id = open_report(app, message_id="<report-1@reporter.example>")
        assert check(app, ams(11, 11, 10)) == 1
        report = asyncio.run(app.drain_outbox())
    finally:
        app.close()
    assert report.sent == 1
    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == (CAROL,)
    assert mail.mail_from == "security@example.test"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert f"[{case_id}]" in mail.message["Subject"]
    assert mail.message["References"] == "<report-1@reporter.example>"


# ---------------------------------------------------------------------------------------------
# Two instances on PostgreSQL


def test_two_instances_on_postgresql_never_double_a_reminder(pg_url: str) -> None:
    apps = [make_app(make_settings(pg_url)) for _ in range(2)]
    try:
        ids = [open_report(apps[0], FRIDAY_REPORT + timedelta(minutes=i)) for i in range(40)]
        moments = [ams(11, 11, 10), ams(11, 11, 11), ams(11, 12, 1), ams(11, 12, 2)]
        queued: list[int] = []
        errors: list[BaseException] = []
        for now in moments:
            start = threading.Barrier(len(apps))

            def run(app: App, now: datetime = now, start: threading.Barrier = start) -> None:
                try:
                    start.wait()
                    queued.append(watch(app, now))
                except BaseException as exc:  # surfaced below, not lost in the thread
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(app,)) for app in apps]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert errors == []
        assert sum(queued) == 2 * len(ids)
        got = reminders(apps[0])
        rows = outbox(apps[0])
    finally:
        for app in apps:
            app.close()
    assert sorted((c, d, s) for c, d, s, _ in got) == sorted(
        [(i, "ack", "at-risk") for i in ids] + [(i, "ack", "overdue") for i in ids]
    )
    assert len(rows) == 2 * len(ids)
    assert len({r.message_id for r in rows}) == len(rows)
