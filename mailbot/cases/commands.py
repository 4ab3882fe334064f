"""The team's email commands: whole lines at the very top of a trusted team message.

    /ack
    /assess severity=high target=2026-12-15
    /resolve                      (add "quiet": the reporter is not told)
    /close duplicate              (/close spam quiet: nor here)
    /reopen
    /duplicate SEC-2026-0040
    /cve CVE-2026-12345
    /credit "Jane Doe"            (or /credit none, /anonymous: no credit)
    /disclose 2027-01-15          (the agreed publication date; /disclose none clears it)

Parsing stops at the first line that is not a command, so quoted text further down can never
trigger one. Parsing is pure; ``apply_command`` checks every argument before anything changes
(dates within TARGET_WINDOW of today, case ids that look like one, values within their column
sizes) and performs the command through ``mailbot.cases.service``. Whatever cannot apply is a
``TransitionRefused`` with the reason, which the caller records; none is an error.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from mailbot.cases import service
from mailbot.cases.models import Case
from mailbot.cases.service import Actor, DueAfter, TransitionRefused

MAX_COMMANDS = 20
NAMES = ("ack", "assess", "resolve", "close", "reopen", "duplicate", "cve", "credit",
         "anonymous", "disclose")
# What a reporter may say about their own case (mailbot.intake.reporter): never a status change.
REPORTER_NAMES = ("credit", "anonymous")
# A target resolution date from a year ago (late bookkeeping) to ten years ahead.
TARGET_WINDOW = (timedelta(days=-366), timedelta(days=3653))
_CASE_ID = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,15}-\d{4}-\d{4,12}$")


def log_name(command: Command) -> str:
    """``/assess``; what a log line may call the command (an unknown word is not repeated)."""
    return f"/{command.name}" if command.name in NAMES else "/(unknown)"


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    line: str


def parse_commands(body: str) -> list[Command]:
    """The command lines at the top of ``body``; blank lines before them are skipped."""
    commands: list[Command] = []
    for raw_line in body.splitlines():
        line = raw_line.strip()
        if not line:
            if commands:
                break
            continue
        if not line.startswith("/") or line.startswith("//"):
            break
        word, _, rest = line[1:].partition(" ")
        try:
            args = tuple(shlex.split(rest))
        except ValueError:
            args = (rest,)  # unbalanced quotes: kept, refused later with a reason
        commands.append(Command(word.lower(), args, line[:500]))
        if len(commands) >= MAX_COMMANDS:
            break
    return commands


# Commands that end a case; the reporter gets a notice unless the command says ``quiet``.
NOTIFYING = ("resolve", "close", "duplicate")
QUIET = "quiet"


def notifies_reporter(command: Command) -> bool:
    """``/resolve`` or ``/close fixed`` tells the reporter; ``/close spam quiet`` does not."""
    return command.name in NOTIFYING and QUIET not in (a.lower() for a in command.args)


EndOfDay = Callable[[date], datetime]
UpdateDueAfter = Callable[[datetime], datetime | None]


def apply_command(
    session: Session,
    case: Case,
    command: Command,
    actor: Actor,
    now: datetime,
    *,
    assessment_due_after: DueAfter,
    end_of_day: EndOfDay,
    update_due_after: UpdateDueAfter | None = None,
) -> None:
    """Perform one command; raise TransitionRefused with the reason when it cannot apply.

    ``update_due_after``: when the keep-the-reporter-informed clock next rings after an
    instant (None: that clock is off)."""
    if command.name in NOTIFYING:
        # ``quiet`` only decides whether the reporter is told (``notifies_reporter``).
        command = Command(command.name, tuple(a for a in command.args if a.lower() != QUIET),
                          command.line)
    name, args = command.name, command.args
    if name not in NAMES:
        raise TransitionRefused(f"unknown command /{name}; known: "
                                + ", ".join("/" + n for n in NAMES), log_reason="unknown command")
    if name == "ack":
        _no_args(command)
        service.acknowledge(session, case, actor, now, assessment_due_after, explicit=True)
    elif name == "assess":
        severity, target = parse_assess_args(args)
        if target is not None:
            check_target(target, now)
        service.assess(session, case, actor, now, severity=severity, target=target,
                       resolution_due=end_of_day(target) if target else None,
                       assessment_due_after=assessment_due_after,
                       update_due=update_due_after(now) if update_due_after else None)
    elif name == "resolve":
        _no_args(command)
        service.resolve(session, case, actor, now)
    elif name == "close":
        service.close(session, case, actor, now, _one_arg(command, "a reason"))
    elif name == "reopen":
        _no_args(command)
        service.reopen(session, case, actor, now,
                       update_due=update_due_after(now) if update_due_after else None)
    elif name == "duplicate":
        original = _one_arg(command, "a case id").upper()
        if not _CASE_ID.match(original):
            raise TransitionRefused(f"/duplicate takes a case id such as {case.id}",
                                    log_reason="not a case id")
        service.mark_duplicate(session, case, original, actor, now)
    elif name == "cve":
        service.add_cve(session, case, _one_arg(command, "a CVE id"), actor, now)
    elif name in ("credit", "anonymous"):
        apply_credit(session, case, command, actor, now, by_reporter=False)
    elif name == "disclose":
        service.set_disclosure_date(session, case, parse_disclosure_date(command, now),
                                    actor, now)


def apply_credit(
    session: Session, case: Case, command: Command, actor: Actor, now: datetime, *,
    by_reporter: bool,
) -> None:
    """``/credit "Name, Org"`` (named), ``/credit none`` or ``/anonymous`` (anonymous)."""
    if command.name == "anonymous":
        _no_args(command)
        service.set_anonymous(session, case, actor, now, by_reporter=by_reporter)
        return
    name = " ".join(command.args)
    if name.strip().lower() in ("none", "no", "anonymous"):
        service.set_anonymous(session, case, actor, now, by_reporter=by_reporter)
        return
    service.set_credit(session, case, name, actor, now, by_reporter=by_reporter)


def parse_disclosure_date(command: Command, now: datetime) -> date | None:
    """``/disclose 2027-01-15`` -> that date (within TARGET_WINDOW); ``/disclose none`` -> None."""
    value = _one_arg(command, "a date such as 2027-01-15, or none")
    if value.lower() == "none":
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise TransitionRefused(f"/disclose takes a date such as 2027-01-15, not {value[:100]!r}",
                                log_reason="disclosure date not a date") from None
    check_target(day, now, what="disclosure date")
    return day


def parse_assess_args(args: tuple[str, ...]) -> tuple[str, date | None]:
    """``severity=high target=2026-12-15`` -> ("high", date(2026, 12, 15)); target optional."""
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("severity", "target"):
            raise TransitionRefused(
                f"/assess takes severity=... and target=YYYY-MM-DD, not {arg[:100]!r}",
                log_reason="unknown argument")
        values[key] = value
    if "severity" not in values:
        raise TransitionRefused("/assess needs severity=low|medium|high|critical",
                                log_reason="no severity")
    severity = values["severity"].lower()
    target = None
    if "target" in values:
        try:
            target = date.fromisoformat(values["target"])
        except ValueError:
            raise TransitionRefused(f"target must be a date such as 2026-12-15, "
                                    f"not {values['target'][:100]!r}",
                                    log_reason="target not a date") from None
    return severity, target


def check_target(target: date, now: datetime, *, what: str = "target") -> None:
    """A target resolution (or disclosure) date within TARGET_WINDOW of ``now``'s date."""
    today = now.date()
    earliest, latest = today + TARGET_WINDOW[0], today + TARGET_WINDOW[1]
    if not earliest <= target <= latest:
        raise TransitionRefused(
            f"{what} {target.isoformat()} is out of range: between {earliest.isoformat()} and "
            f"{latest.isoformat()}", log_reason="target out of range")


def _no_args(command: Command) -> None:
    if command.args:
        raise TransitionRefused(f"/{command.name} takes no arguments",
                                log_reason="takes no arguments")


def _one_arg(command: Command, what: str) -> str:
    if len(command.args) != 1:
        raise TransitionRefused(f"/{command.name} takes {what}",
                                log_reason="wrong number of arguments")
    return command.args[0]
