"""The messages mailbot writes: receipts to reporters; alerts, reminders, escalations and the daily
digest to the team.

Each builder renders a template, composes safe bytes and returns an ``OutgoingMail`` for the
outbox. Message-IDs are derived from what caused the message, so building the same message twice
gives the same id and the outbox keeps one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from mailbot.cases.models import Case
from mailbot.cases.views import credit_of
from mailbot.config import Settings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.intake.unwrap import Sealer
from mailbot.mail.compose import compose, make_message_id
from mailbot.mail.message import InboundMessage
from mailbot.outbox import OutgoingMail
from mailbot.templates import render

if TYPE_CHECKING:
    from mailbot.deadlines.entries import Deadline, DigestEntry, PossibleDuplicate


@dataclass(frozen=True)
class Writer:
    """What every builder needs: settings, the calendar and the token key."""

    settings: Settings
    calendar: BusinessCalendar
    token_key: bytes
    # Encrypts and signs mail to those whose keys we have (mailbot.pgp); None: all goes as is.
    sealer: Sealer | None = None

    @property
    def team_name(self) -> str:
        """The display name of ``smtp.from``, else its address."""
        name, addr = parseaddr(self.settings.smtp.from_address)
        return name or addr

    @property
    def domain(self) -> str:
        return self.settings.own_address.rpartition("@")[2] or "localhost"

    def local_time(self, at: datetime | None) -> str:
        if at is None:
            return "(none)"
        local = at.astimezone(self.calendar.tz)
        return local.strftime("%A %d %B %Y, %H:%M %Z")

    def message_id(self, case_id: str, kind: str, cause: str) -> str:
        nonce = hashlib.sha256(cause.encode()).hexdigest()[:12]
        return make_message_id(case_id, kind, self.token_key, self.domain, nonce)

    def build(
        self,
        *,
        template: str,
        context: Mapping[str, Any],
        case_id: str | None,
        kind: str,
        message_id: str,
        to: list[str],
        envelope_from: str,
        auto_submitted: str,
        now: datetime,
        in_reply_to: str | None = None,
        references: tuple[str, ...] = (),
    ) -> OutgoingMail:
        encrypted = self.sealer is not None and self.sealer.can_encrypt_to(to)
        rendered = render(template, {**context, "reply_encrypted": encrypted},
                          directory=self.settings.templates.directory)
        data = compose(
            from_address=self.settings.smtp.from_address,
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=list(references),
            auto_submitted=auto_submitted,
            date=now,
        )
        if self.sealer is not None:
            data = self.sealer.seal(data, recipients=to, kind=kind)
        return OutgoingMail(case_id=case_id, kind=kind, message_id=message_id,
                            envelope_from=envelope_from, recipients=to,
                            subject=rendered.subject, data=data)

    def build_for_team(
        self,
        *,
        template: str,
        context: Mapping[str, Any],
        case_id: str | None,
        kind: str,
        message_id: str,
        to: list[str],
        now: datetime,
        references: tuple[str, ...] = (),
    ) -> OutgoingMail:
        """Mail to on-call or the team (alerts, reminders, the digest, reports): from our own
        address, so that a bounce reaches us, and marked auto-generated."""
        return self.build(template=template, context=context, case_id=case_id, kind=kind,
                          message_id=message_id, to=to, envelope_from=self.settings.own_address,
                          auto_submitted="auto-generated", now=now, references=references)


def receipt(writer: Writer, case: Case, msg: InboundMessage, dedupe: str,
            now: datetime, *, report_encrypted: bool = False) -> OutgoingMail:
    """The receipt to the report's sender: threaded under the report, never echoing its body.

    ``report_encrypted``: the report came encrypted; a receipt we cannot encrypt says so."""
    policy = writer.settings.policy
    references = msg.references[-20:]
    if msg.message_id:
        references = (*references, msg.message_id)
    return writer.build(
        template="receipt",
        context={
            "case_id": case.id,
            # Never the report's own subject: a receipt goes to whatever address From names,
            # and the subject need not be that address's to read. A service's "your code is
            # 493817" mailed to security@ in an attacker's name (the "Ticket Trick") would hand
            # the code to the attacker. The thread headers and the case tag keep it together.
            "subject": "",
            "reporter_name": case.reporter_name,
            "ack_due_local": writer.local_time(case.ack_due),
            "ack_business_days": policy.ack_business_days,
            "assessment_business_days": policy.assessment_business_days,
            "team_name": writer.team_name,
            "report_encrypted": report_encrypted,
        },
        case_id=case.id,
        kind="receipt",
        message_id=writer.message_id(case.id, "receipt", dedupe),
        to=[case.reporter],
        envelope_from="",  # RFC 3834: a bounced receipt can never loop back
        auto_submitted="auto-replied",
        now=now,
        in_reply_to=msg.message_id or None,
        references=references,
    )


def alert(writer: Writer, *, recipients: list[str], case_id: str | None, what: str,
          details: Mapping[str, Any], cause: str, now: datetime,
          closing: str = "") -> OutgoingMail | None:
    """Tell a person that something needs them (a quarantined message, a failed send).

    ``closing`` replaces the alert's last line (that the message in question is kept)."""
    if not recipients:
        return None
    return writer.build_for_team(
        template="alert",
        context={"what": what, "case_id": case_id or "", "details": dict(details),
                 "closing": closing},
        case_id=case_id,
        kind="alert",
        message_id=writer.message_id(case_id or "mailbot", "alert", cause),
        to=recipients,
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Deadlines: reminders, escalations and the digest, all to on-call

DEADLINE_LABELS = {"ack": "acknowledgement", "assessment": "assessment", "resolution": "resolution"}
# What on-call can do about each deadline, in the team's own tools.
DEADLINE_ACTIONS = {
    "ack": (
        "Answer the reporter in the case's thread (reply-all, so that security@ sees it), "
        "or send /ack as the first line of a reply to the thread."
    ),
    "assessment": (
        "Send the assessment: /assess severity=<low|medium|high|critical> "
        "target=YYYY-MM-DD as the first line of a reply to the thread."
    ),
    "resolution": "Resolve the case (/resolve), or assess it again with a new target date.",
}
STAGE_KINDS = {"at-risk": "reminder", "overdue": "escalation"}


def show_command(case_id: str) -> str:
    """The CLI line that shows a case, as printed in reminders and digests."""
    return f"mailbot cases show {case_id}"


def describe_interval(delta: timedelta) -> str:
    """A span as people say it: ``2 days 3 hours``, ``5 hours 12 minutes``, ``40 minutes``."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [_count(days, "day"), _count(hours, "hour")]
    if not days:
        parts.append(_count(mins, "minute"))
    return " ".join(p for p in parts if p)


def time_left(due: datetime, now: datetime) -> str:
    """``9 hours 59 minutes left`` before ``due``, or ``overdue by 2 days 3 hours`` after it."""
    if now > due:
        return f"overdue by {describe_interval(now - due)}"
    return f"{describe_interval(due - now)} left"


def _count(n: int, unit: str) -> str:
    if n == 0:
        return ""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def notification_subject(writer: Writer, case: Case) -> str:
    """What mail to on-call says of a report's subject: nothing, unless the policy allows it
    (``[policy] subjects_in_notifications``): a report's content stays out of mailboxes."""
    if writer.settings.policy.subjects_in_notifications:
        return case.subject
    return f"(not in mail: mailbot cases show {case.id})"


def reminder(
    writer: Writer,
    case: Case,
    *,
    deadline: str,
    due: datetime,
    stage: str,
    recipients: list[str],
    report_message_id: str | None,
    now: datetime,
) -> OutgoingMail:
    """The at-risk reminder (``reminder``) or the overdue escalation (``escalation``) to on-call.

    Its Message-ID depends only on the case, the deadline and the stage, so the same reminder
    built twice is one outbox row. It threads under the report (References only: it answers
    nothing) so that it sits beside the case in a mail client that has the report.
    """
    kind = STAGE_KINDS[stage]
    return writer.build_for_team(
        template=kind,
        context={
            "case_id": case.id,
            "status": case.status,
            "subject": notification_subject(writer, case),
            "reporter": case.reporter,
            "reporter_name": case.reporter_name,
            "received_local": writer.local_time(case.received_at),
            "deadline": deadline,
            "deadline_label": DEADLINE_LABELS[deadline],
            "action": DEADLINE_ACTIONS[deadline],
            "due_local": writer.local_time(due),
            "time_left": time_left(due, now),
            "show_command": show_command(case.id),
        },
        case_id=case.id,
        kind=kind,
        message_id=writer.message_id(case.id, kind, f"{deadline}:{stage}"),
        to=recipients,
        now=now,
        references=(report_message_id,) if report_message_id else (),
    )


def digest_message_id(writer: Writer, day: date) -> str:
    """One digest per local day: its Message-ID is derived from the day alone."""
    return writer.message_id("mailbot", "digest", f"digest:{day.isoformat()}")


_DIGEST_GROUPS = (("overdue", "Overdue"), ("at-risk", "At risk"), (None, "Coming up"))


def digest(
    writer: Writer,
    *,
    day: date,
    entries: Sequence[DigestEntry],
    total: int,
    recipients: list[str],
    now: datetime,
    withheld: Sequence[Case] = (),
    held_back: int = 0,
    duplicates: Sequence[PossibleDuplicate] = (),
) -> OutgoingMail:
    """The daily digest: open cases by deadline, soonest first, grouped by stage; first of all
    the reports whose receipt was withheld as too late, which wait on a person to answer them.

    ``entries`` are at most a few hundred of the ``total`` open cases; the mail says how many
    more there are, and how many receipts ``policy.receipts_per_hour`` held back (``held_back``,
    the last 24 hours). ``duplicates``: open cases whose report read like another case's.
    """
    groups: list[dict[str, Any]] = [{
        "title": "No receipt was sent (it would have come too late): answer the reporter yourself",
        "cases": [_digest_row(writer, c, None, now) for c in withheld],
    }]
    for stage, title in _DIGEST_GROUPS:
        rows = [
            _digest_row(writer, e.case, e.deadline, now)
            for e in entries
            if e.deadline is not None and e.stage == stage
        ]
        groups.append({"title": title, "cases": rows})
    undated = [_digest_row(writer, e.case, e.deadline, now) for e in entries if e.deadline is None]
    groups.append({"title": "No running deadline", "cases": undated})
    return writer.build_for_team(
        template="digest",
        context={
            "day_local": day.strftime("%A %d %B %Y"),
            "total": total,
            "shown": len(entries),
            "more": max(total - len(entries), 0),
            "groups": [g for g in groups if g["cases"]],
            "list_command": "mailbot cases list",
            "held_back": held_back,
            "duplicates": [{"case_id": d.case_id, "other_id": d.other_id,
                            "percent": round(d.similarity * 100)} for d in duplicates],
        },
        case_id=None,
        kind="digest",
        message_id=digest_message_id(writer, day),
        to=recipients,
        now=now,
    )


def _digest_row(
    writer: Writer, case: Case, deadline: Deadline | None, now: datetime
) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "status": case.status,
        "subject": notification_subject(writer, case),
        "reporter": case.reporter,
        "reporter_name": case.reporter_name,
        "deadline_label": DEADLINE_LABELS[deadline.name] if deadline else "",
        "due_local": writer.local_time(deadline.due) if deadline else "",
        "time_left": time_left(deadline.due, now) if deadline else "",
        "show_command": show_command(case.id),
        "flags": list(case.flags),
    }


# ---------------------------------------------------------------------------------------------
# The rest of the promise: disclosure date and keeping the reporter informed, to on-call

def promise_reminder(
    writer: Writer,
    case: Case,
    *,
    kind: str,
    due: datetime,
    stage: str,
    recipients: list[str],
    report_message_id: str | None,
    now: datetime,
) -> OutgoingMail:
    """``disclosure-reminder``, ``disclosure-escalation`` or ``update-reminder`` to on-call.

    Its Message-ID depends on the case, the kind and the stage (which names the date it is
    about), so the same reminder built twice is one outbox row."""
    policy = writer.settings.policy
    disclosure = case.disclosure_date.isoformat() if case.disclosure_date else "(none)"
    facts: list[tuple[str, str]] = [("Received", writer.local_time(case.received_at))]
    if kind == "update-reminder":
        days = policy.update_interval_business_days
        headline = f"Update the reporter: no news from the team for {days} business days"
        explanation = (f"The reporter of case {case.id} has had no mail from the team for "
                       f"{days} business days since the assessment or the team's last mail "
                       "to them. The disclosure policy promises to keep them informed.")
        action = ("Write to the reporter in the case's thread (reply-all, so that security@ "
                  "sees it) with where the fix stands. That restarts this clock; otherwise "
                  "this reminder comes again after another interval. mailbot never mails the "
                  "reporter about this on its own.")
        facts += [("Assessed", writer.local_time(case.assessed_at)),
                  ("Severity", case.severity or "(none)"),
                  ("Target", case.target_date.isoformat() if case.target_date else "(none)")]
    elif kind == "disclosure-escalation":
        headline = f"DISCLOSURE DATE REACHED while the case is {case.status}: {disclosure}"
        explanation = (f"The agreed disclosure date of case {case.id}, {disclosure}, has "
                       f"arrived, and the case is still {case.status}: not resolved.")
        action = ("Resolve the case (/resolve) if the fix is out, or agree a new date with the "
                  "reporter and record it (/disclose YYYY-MM-DD) as the first line of a "
                  "reply to the thread.")
        facts += [("Disclosure", disclosure), ("Late", time_left(due, now))]
    else:
        headline = f"Disclosure on {disclosure} ({time_left(due, now)})"
        explanation = (f"Case {case.id} is to be disclosed on {disclosure}, in "
                       f"{policy.disclosure_warning_business_days} business days or less.")
        action = ("Prepare the advisory (mailbot cases advisory) and check that the fix is "
                  "ready. If the date moves, record the new one: /disclose YYYY-MM-DD as the "
                  "first line of a reply to the thread.")
        facts += [("Disclosure", disclosure), ("Time left", time_left(due, now))]
    facts.append(("Credit", _credit_line(case)))
    return writer.build_for_team(
        template="promise",
        context={
            "case_id": case.id, "status": case.status,
            "subject": notification_subject(writer, case),
            "reporter": case.reporter, "reporter_name": case.reporter_name,
            "headline": headline, "explanation": explanation, "facts": facts,
            "action": action, "show_command": show_command(case.id), "kind": kind,
        },
        case_id=case.id,
        kind=kind,
        message_id=writer.message_id(case.id, kind, f"{kind}:{stage}"),
        to=recipients,
        now=now,
        references=(report_message_id,) if report_message_id else (),
    )


def _credit_line(case: Case) -> str:
    credit = credit_of(case)
    if case.credit_consent == "named" and credit:
        return f"{credit} (the reporter agreed)"
    if case.credit_consent == "anonymous":
        return "none: the reporter asked not to be named"
    return "unknown: the reporter has not said; do not name them"


def status_notice(
    writer: Writer, case: Case, *, report_message_id: str | None, now: datetime
) -> OutgoingMail:
    """The reporter's short notice that their case is resolved or closed (see notices.py)."""
    fixed = case.status == "resolved" or case.close_reason == "fixed"
    ended = case.closed_at if case.status == "closed" else case.resolved_at
    return writer.build(
        template="notice",
        context={
            "case_id": case.id, "status": case.status, "close_reason": case.close_reason or "",
            "cves": list(case.cve), "fixed": fixed,
            "disclosure_date": case.disclosure_date.isoformat() if case.disclosure_date else "",
            "reporter_name": case.reporter_name, "team_name": writer.team_name,
        },
        case_id=case.id,
        kind="notice",
        message_id=writer.message_id(case.id, "notice",
                                     f"{case.status}:{ended.isoformat() if ended else ''}"),
        to=[case.reporter],
        envelope_from="",  # as for receipts: a bounce can never loop back
        auto_submitted="auto-generated",
        now=now,
        in_reply_to=report_message_id,
        references=(report_message_id,) if report_message_id else (),
    )
