"""What a Prometheus scrape sees, read from the database at scrape time.

Every figure comes from the shared database, so every instance reports the same truth and a
restart loses nothing. Labels only ever hold mailbot's own words (statuses, deadlines, stages,
message kinds, outbox states): never an address, a subject or anything else from a report.

    mailbot_open_cases{status}                      open cases by status
    mailbot_cases_at_risk{deadline}                 running deadline at risk now
    mailbot_cases_overdue{deadline}                 running deadline passed
    mailbot_last_mailbox_pass_timestamp_seconds     last successful mailbox pass (any instance)
    mailbot_problem{service}                        1 while a refused login waits for a person
    mailbot_messages_total{direction,kind}          messages recorded, by what intake made of them
    mailbot_inbound_failures{state}                 failed intake: retrying, quarantined
    mailbot_outbox_messages{state}                  queued (the queue depth), sent, failed
    mailbot_reminders_total{deadline,stage}         reminders (at-risk) and escalations (overdue)
    mailbot_scrape_error                            1 when the database could not be read
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mailbot.cases import vocabulary
from mailbot.cases.models import Case, InboundFailure, Message, Outbox, Reminder
from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.deadlines.watch import ACK, ASSESSMENT, AT_RISK, OVERDUE, RESOLUTION, stage_at
from mailbot.errors import MailbotError
from mailbot.health.records import read_status
from mailbot.store import Database

log = logging.getLogger("mailbot.metrics")

_RUNNING = ((vocabulary.NEW, ACK, Case.ack_due),
            (vocabulary.ACKNOWLEDGED, ASSESSMENT, Case.assessment_due),
            (vocabulary.ASSESSED, RESOLUTION, Case.resolution_due))


class MailbotCollector(Collector):
    def __init__(self, db: Database, calendar: BusinessCalendar, policy: PolicySettings,
                 now: Callable[[], datetime]) -> None:
        self.db, self.calendar, self.policy, self.now = db, calendar, policy, now

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        error = GaugeMetricFamily("mailbot_scrape_error",
                                  "1 when the database could not be read for this scrape")
        try:
            with self.db.session() as session:
                families = list(self._families(session, self.now()))
        except (SQLAlchemyError, MailbotError) as exc:
            log.warning("metrics: cannot read the database: %s", " ".join(str(exc).split()))
            error.add_metric([], 1)
            yield error
            return
        error.add_metric([], 0)
        yield from families
        yield error

    def _families(self, session: Session,
                  now: datetime) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        open_cases = GaugeMetricFamily("mailbot_open_cases", "Open cases by status",
                                       labels=["status"])
        counts = {status: n for status, n in session.execute(select(Case.status, func.count())
                  .where(Case.status.in_(vocabulary.OPEN_STATUSES)).group_by(Case.status))}
        for status in vocabulary.OPEN_STATUSES:
            open_cases.add_metric([status], counts.get(status, 0))
        yield open_cases

        at_risk = GaugeMetricFamily("mailbot_cases_at_risk",
                                    "Open cases whose running deadline is at risk now",
                                    labels=["deadline"])
        overdue = GaugeMetricFamily("mailbot_cases_overdue",
                                    "Open cases whose running deadline has passed",
                                    labels=["deadline"])
        horizon = self._horizon(now)
        for status, name, column in _RUNNING:
            late = session.scalar(select(func.count()).where(
                Case.status == status, column < now)) or 0
            # Candidates by SQL, the last word to the watch's own rule (as `cases list` does).
            soon = session.scalars(select(column).where(
                Case.status == status, column >= now, column < horizon))
            risky = sum(1 for due in soon if due is not None and stage_at(
                due, now, self.calendar, self.policy.at_risk_business_days) == AT_RISK)
            at_risk.add_metric([name], risky)
            overdue.add_metric([name], late)
        yield at_risk
        yield overdue

        health = read_status(session)
        yield GaugeMetricFamily("mailbot_last_mailbox_pass_timestamp_seconds",
                                "When a daemon last finished a mailbox pass (Unix time; 0 = "
                                "never)", value=health.read_at.timestamp() if health.read_at
                                else 0.0)
        problems = GaugeMetricFamily("mailbot_problem", "1 while a failure a person must fix "
                                     "is recorded (a refused login)", labels=["service"])
        failing = {p.service for p in health.problems}
        for service in ("imap", "smtp"):
            problems.add_metric([service], 1 if service in failing else 0)
        yield problems

        messages = CounterMetricFamily("mailbot_messages", "Messages recorded on cases, by "
                                       "direction and by what intake made of them",
                                       labels=["direction", "kind"])
        for direction, kind, n in session.execute(select(
                Message.direction, Message.kind, func.count()).group_by(
                Message.direction, Message.kind).order_by(Message.direction, Message.kind)):
            messages.add_metric([direction, kind], n)
        yield messages

        failures = GaugeMetricFamily("mailbot_inbound_failures", "Messages that failed intake",
                                     labels=["state"])
        by_state = {q: n for q, n in session.execute(select(
            InboundFailure.quarantined, func.count()).group_by(InboundFailure.quarantined))}
        failures.add_metric(["retrying"], by_state.get(False, 0))
        failures.add_metric(["quarantined"], by_state.get(True, 0))
        yield failures

        outbox = GaugeMetricFamily("mailbot_outbox_messages", "Outgoing messages by state "
                                   "(queued is the queue depth)", labels=["state"])
        states = {state: n for state, n in session.execute(select(
            Outbox.state, func.count()).group_by(Outbox.state))}
        for state in ("queued", "sent", "failed"):
            outbox.add_metric([state], states.get(state, 0))
        yield outbox

        reminders = CounterMetricFamily("mailbot_reminders", "Reminders (stage at-risk) and "
                                        "escalations (stage overdue) queued",
                                        labels=["deadline", "stage"])
        sent = {(d, s): n for d, s, n in session.execute(select(
            Reminder.deadline, Reminder.stage, func.count()).group_by(
            Reminder.deadline, Reminder.stage))}
        for _status, name, _column in _RUNNING:
            for stage in (AT_RISK, OVERDUE):
                reminders.add_metric([name, stage], sent.get((name, stage), 0))
        yield reminders

    def _horizon(self, now: datetime) -> datetime:
        from mailbot.deadlines.watch import at_risk_horizon

        return at_risk_horizon(self.calendar, now, self.policy.at_risk_business_days)
