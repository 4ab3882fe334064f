"""The monthly report mail: last month's figures to ``[report] monthly_to`` on the first business
day of the month, exactly once with a restart and with several instances at once, delivered to a
real SMTP server with the HTML report attached."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases.models import Outbox
from mailbot.clock import FixedClock
from mailbot.report.monthly import first_business_day, monthly_report_due
from tests import report_world as world
from tests.servers.smtp_sink import SmtpSink

LEAD = "lead@example.test"


@pytest.fixture
def built(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[tuple[App, list[world.Story]]]:
    app, stories = world.make_world(tmp_path, count=60, monthly_to=(LEAD,),
                                    smtp=smtp_sink.smtp_settings())
    yield app, stories
    app.close()


def report_rows(app: App) -> list[Outbox]:
    with app.db.session() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "report")))


def test_sent_once_from_opening_time_on_the_first_business_day(
        built: tuple[App, list[world.Story]], smtp_sink: SmtpSink) -> None:
    app, stories = built
    # A daemon that was not running on November's first business day still sends October's.
    assert monthly_report_due(app, world.ams(2026, 11, 30, 12)) == 1
    assert monthly_report_due(app, world.ams(2026, 11, 30, 13)) == 0
    # Tuesday 1 December 2026 is the first business day; business hours open at 09:00.
    assert monthly_report_due(app, world.ams(2026, 12, 1, 8, 30)) == 0
    assert monthly_report_due(app, world.ams(2026, 12, 1, 9, 30)) == 1
    assert monthly_report_due(app, world.ams(2026, 12, 1, 9, 40)) == 0
    # A restart: a new App on the same database sends nothing more that day or later.
    again = App(app.settings, clock=FixedClock(world.ams(2026, 12, 1, 11)))
    try:
        assert monthly_report_due(again, world.ams(2026, 12, 1, 11)) == 0
        assert monthly_report_due(again, world.ams(2026, 12, 3, 10)) == 0
    finally:
        again.close()
    assert len(report_rows(app)) == 2

    asyncio.run(app.drain_outbox(ignore_backoff=True))
    mails = [m for m in smtp_sink.received if LEAD in m.rcpt_tos]
    assert sorted(str(m.message["Subject"]).split(":")[0] for m in mails) == [
        "Security report, November 2026", "Security report, October 2026"]
    [mail] = [m for m in mails if "November" in str(m.message["Subject"])]
    total, _ = world.expected(stories, date(2026, 11, 1), date(2026, 11, 30))
    share = round(100 * total.ack_on_time / (total.ack_on_time + total.ack_late))
    assert mail.message["Subject"] == (
        f"Security report, November 2026: {share}% acknowledged on time")
    assert mail.message["Auto-Submitted"] == "auto-generated"
    text = mail.message.get_body(("plain",))
    assert text is not None
    assert f"Reports received           {total.received}" in text.get_content()
    [attachment] = list(mail.message.iter_attachments())
    assert attachment.get_filename() == "security-report-2026-11.html"
    assert attachment.get_content_type() == "text/html"
    html = attachment.get_content()
    assert "<svg" in html and "Security report: November 2026" in html
    assert "2026-11-01 to 2026-11-30" in html


def test_a_first_of_the_month_on_a_weekend_waits_for_monday(
        built: tuple[App, list[world.Story]]) -> None:
    app, _ = built
    assert first_business_day(app, date(2026, 8, 20)) == date(2026, 8, 3)  # 1 Aug: Saturday
    assert monthly_report_due(app, world.ams(2026, 8, 1, 10)) == 0
    assert monthly_report_due(app, world.ams(2026, 8, 3, 10)) == 1
    [row] = report_rows(app)
    assert b"Subject: Security report, July 2026: " in row.data


def test_several_instances_at_once_queue_it_once(built: tuple[App, list[world.Story]]) -> None:
    race(built[0])


def test_several_instances_on_postgresql_queue_it_once(tmp_path: Path, pg_url: str) -> None:
    app, _ = world.make_world(tmp_path, count=10, monthly_to=(LEAD,), database_url=pg_url)
    try:
        race(app)
    finally:
        app.close()


def race(app: App) -> None:
    """Three instances on one database look for the mail at the same moment."""
    now = world.ams(2026, 12, 1, 10)
    instances = [App(app.settings, clock=FixedClock(now)) for _ in range(3)]
    start = threading.Barrier(len(instances))
    queued: list[int] = []

    def run(instance: App) -> None:
        start.wait()
        queued.append(monthly_report_due(instance, now))

    threads = [threading.Thread(target=run, args=(i,)) for i in instances]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for i in instances:
            i.close()
    assert sorted(queued) == [0, 0, 1]
    assert len(report_rows(app)) == 1


def test_nobody_configured_means_no_report(tmp_path: Path) -> None:
    app, _ = world.make_world(tmp_path, count=5)
    try:
        assert monthly_report_due(app, world.ams(2026, 12, 1, 10)) == 0
        assert report_rows(app) == []
    finally:
        app.close()
