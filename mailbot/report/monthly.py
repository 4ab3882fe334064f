"""The monthly report by mail: last month's figures to ``[report] monthly_to``, exactly once.

It goes on the first business day of the month, from the opening of business hours (or later
that month if no daemon ran then). Exactly once, even with several instances or a restart: its
Message-ID is derived from the month alone, the outbox holds one row per Message-ID (a unique
constraint), and the row goes in inside a savepoint, so the instance that comes second is refused
by the database and skips it.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailbot.cases.models import Outbox
from mailbot.deadlines.watch import Running
from mailbot.outbox import OutgoingMail, enqueue
from mailbot.outgoing import Writer
from mailbot.report.figures import Figures, Period

log = logging.getLogger("mailbot.report")

KIND = "report"


def previous_month(today: date) -> Period:
    last = today.replace(day=1) - timedelta(days=1)
    return Period(last.replace(day=1), last)


def first_business_day(app: Running, today: date) -> date:
    day = today.replace(day=1)
    while not app.calendar.is_business_day(day):
        day += timedelta(days=1)
    return day


def report_message_id(writer: Writer, month: date) -> str:
    return writer.message_id("mailbot", KIND, f"monthly-report:{month:%Y-%m}")


def monthly_report_due(app: Running, now: datetime) -> int:
    """Queue last month's report if it is time and it was not queued yet; return 1 or 0."""
    recipients = list(app.settings.report.monthly_to)
    if not recipients:
        return 0
    local = now.astimezone(app.calendar.tz)
    first = first_business_day(app, local.date())
    opens = app.calendar.business_hours[0]
    if local.date() < first or (local.date() == first and local.time() < opens):
        return 0
    period = previous_month(local.date())
    message_id = report_message_id(app.writer, period.since)
    with app.db.session() as session:
        if session.scalar(select(Outbox.id).where(Outbox.message_id == message_id)) is not None:
            return 0
    from mailbot.report.service import build_figures

    figures = build_figures(app.db, app.calendar, app.settings.policy, period, now)
    if not app.settings.policy.subjects_in_notifications:
        # Mail carries no report's subject ([policy] subjects_in_notifications).
        figures = dataclasses.replace(figures, at_risk=[
            dataclasses.replace(a, subject="") for a in figures.at_risk])
    mail = report_mail(app.writer, figures, recipients=recipients, message_id=message_id,
                       now=now)
    with app.db.session() as session:
        try:
            with session.begin_nested():
                row = enqueue(session, mail, now)
                session.flush()
        except IntegrityError:
            return 0  # another instance queued it first (and its transaction had not ended)
        if row is None:
            return 0  # another instance queued it first (enqueue saw its row)
    log.info("queued the report for %s to %s", f"{period.since:%Y-%m}", ", ".join(recipients))
    return 1


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def report_mail(writer: Writer, figures: Figures, *, recipients: list[str], message_id: str,
                now: datetime) -> OutgoingMail:
    """The headline figures in the text, the full HTML report attached."""
    from mailbot.report.html import render_html

    t, since = figures.totals, figures.period.since
    attachment = f"security-report-{since:%Y-%m}.html"
    mail = writer.build_for_team(
        template="monthly-report",
        context={
            "month_name": since.strftime("%B %Y"),
            "since": since.isoformat(),
            "until": figures.period.until.isoformat(),
            "received": t.received,
            "ack_on_time": _percent(t.ack_on_time_share),
            "assess_on_time": _percent(t.assess_on_time_share),
            "acknowledged_late": t.acknowledged_late,
            "assessed_late": t.assessed_late,
            "ack_open": t.ack_open,
            "assess_open": t.assess_open,
            "ack_median": _days(t.ack_median_business_days),
            "ack_p90": _days(t.ack_p90_business_days),
            "assess_median": _days(t.assess_median_business_days),
            "assess_p90": _days(t.assess_p90_business_days),
            "breaches": len(t.breaches),
            "at_risk_total": figures.at_risk_total,
            "ack_business_days": figures.ack_business_days,
            "assessment_business_days": figures.assessment_business_days,
            "attachment": attachment,
            "report_command": f"mailbot report --since {since} --until {figures.period.until}",
        },
        case_id=None,
        kind=KIND,
        message_id=message_id,
        to=recipients,
        now=now,
    )
    message = message_from_bytes(mail.data, _class=EmailMessage, policy=SMTP)
    assert isinstance(message, EmailMessage)
    html = render_html(figures, title=f"Security report: {since:%B %Y}")
    message.add_attachment(html.encode("utf-8"), maintype="text", subtype="html",
                           filename=attachment)
    return OutgoingMail(case_id=None, kind=KIND, message_id=mail.message_id,
                        envelope_from=mail.envelope_from, recipients=mail.recipients,
                        subject=mail.subject, data=message.as_bytes())
