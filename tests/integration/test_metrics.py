"""``[metrics] listen``: the daemon's Prometheus endpoint, scraped over real HTTP and parsed with
prometheus-client's own parser; every figure equals the database's, and no label carries an
address or a subject."""

from __future__ import annotations

import dataclasses
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import ColumnElement, func, select

from mailbot.app import App
from mailbot.cases.models import Case, Message, Outbox, Reminder
from mailbot.config_sections import MetricsSettings
from mailbot.daemon import Daemon
from mailbot.deadlines.watch import at_risk_case_ids
from mailbot.health.records import mailbox_read
from mailbot.metrics.server import start_metrics_server
from tests import report_world as world
from tests.servers import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app, _ = world.make_world(tmp_path_factory.mktemp("metrics"), count=60)
    app.watch_deadlines(world.NOW)  # reminders and escalations, as the daemon would queue
    with app.db.session() as session:
        mailbox_read(session, world.NOW)  # a finished mailbox pass, as the daemon records it
    yield app
    app.close()


def scrape(port: int) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


@pytest.fixture(scope="module")
def scraped(built: App) -> Iterator[tuple[str, Samples]]:
    server = start_metrics_server(built.db, built.calendar, built.settings.policy,
                                  lambda: world.NOW, "127.0.0.1", 0)
    try:
        yield scrape(server.port)
    finally:
        server.stop()


def count(app: App, *where: ColumnElement[bool]) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Case).where(*where)) or 0)


def test_open_cases_by_status(built: App, scraped: tuple[str, Samples]) -> None:
    _, samples = scraped
    for status in ("new", "acknowledged", "assessed"):
        assert samples[("mailbot_open_cases", (("status", status),))] == count(
            built, Case.status == status)


def test_at_risk_and_overdue_per_deadline(built: App, scraped: tuple[str, Samples]) -> None:
    _, samples = scraped
    assert samples[("mailbot_cases_overdue", (("deadline", "ack"),))] == count(
        built, Case.status == "new", Case.ack_due < world.NOW)
    assert samples[("mailbot_cases_overdue", (("deadline", "assessment"),))] == count(
        built, Case.status == "acknowledged", Case.assessment_due < world.NOW)
    with built.db.session() as session:
        at_risk = at_risk_case_ids(session, built.calendar, built.settings.policy, world.NOW)
    total = sum(samples[("mailbot_cases_at_risk", (("deadline", d),))]
                for d in ("ack", "assessment", "resolution"))
    assert total == len(at_risk) >= 1  # the hostile-subject case is due today


def test_outbox_reminders_messages_and_last_pass(built: App,
                                                 scraped: tuple[str, Samples]) -> None:
    _, samples = scraped
    with built.db.session() as session:
        queued = session.scalar(select(func.count()).select_from(Outbox).where(
            Outbox.state == "queued"))
        escalations = session.scalar(select(func.count()).select_from(Reminder).where(
            Reminder.deadline == "ack", Reminder.stage == "overdue"))
        reports = session.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.kind == "report"))
    assert samples[("mailbot_outbox_messages", (("state", "queued"),))] == queued
    assert samples[("mailbot_outbox_messages", (("state", "failed"),))] == 0
    assert escalations and samples[("mailbot_reminders_total", (
        ("deadline", "ack"), ("stage", "overdue")))] == escalations
    assert samples[("mailbot_messages_total", (("direction", "in"), ("kind", "report")))] \
        == reports
    assert samples[("mailbot_inbound_failures", (("state", "quarantined"),))] == 0
    assert samples[("mailbot_last_mailbox_pass_timestamp_seconds", ())] == \
        world.NOW.timestamp()
    assert samples[("mailbot_scrape_error", ())] == 0
    assert samples[("mailbot_problem", (("service", "imap"),))] == 0


def test_no_address_or_report_content_in_the_metrics(scraped: tuple[str, Samples]) -> None:
    text, samples = scraped
    for _name, labels in samples:
        for _key, value in labels:
            assert "@" not in value
    assert "reporter.example" not in text and "team.example.test" not in text
    assert "Report " not in text and "script" not in text


def test_daemon_serves_metrics_when_listen_is_set(built: App, tmp_path: Path) -> None:
    port = free_port()
    settings = dataclasses.replace(built.settings,
                                   metrics=MetricsSettings(listen=("127.0.0.1", port)))
    app = App(settings)
    try:
        daemon = Daemon(app)
        stop = daemon._start_extras(world.NOW)
        try:
            _, samples = scrape(port)
            assert ("mailbot_open_cases", (("status", "new"),)) in samples
        finally:
            stop()
        with pytest.raises(OSError):
            scrape(port)
    finally:
        app.close()
