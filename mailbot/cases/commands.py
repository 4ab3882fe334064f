"""The team's email commands: whole lines at the very top of a trusted team message.

    /ack
    /assess severity=high target=2026-12-15
    /resolve
    /close duplicate
    /reopen
    /duplicate SEC-2026-0040
    /cve CVE-2026-12345
    /credit "Jane Doe"

Parsing stops at the first line that is not a command, so quoted text further down can never
trigger one. Parsing is pure; ``apply_command`` performs one through ``mailbot.cases.service``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from mailbot.cases import service
from mailbot.cases.models import Case
from mailbot.cases.service import Actor, DueAfter, TransitionRefused

MAX_COMMANDS = 20
NAMES = ("ack", "assess", "resolve", "close", "reopen", "duplicate", "cve", "credit")


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


EndOfDay = Callable[[date], datetime]


def apply_command(
    session: Session,
    case: Case,
    command: Command,
    actor: Actor,
    now: datetime,
    *,
    assessment_due_after: DueAfter,
    end_of_day: EndOfDay,
) -> None:
    """Perform one command; raise TransitionRefused with the reason when it cannot apply."""
    name, args = command.name, command.args
    if name not in NAMES:
        raise TransitionRefused(f"unknown command /{name}; known: "
                                + ", ".join("/" + n for n in NAMES))
    if name == "ack":
        _no_args(command)
        service.acknowledge(session, case, actor, now, assessment_due_after, explicit=True)
    elif name == "assess":
        severity, target = parse_assess_args(args)
        service.assess(session, case, actor, now, severity=severity, target=target,
                       resolution_due=end_of_day(target) if target else None,
                       assessment_due_after=assessment_due_after)
    elif name == "resolve":
        _no_args(command)
        service.resolve(session, case, actor, now)
    elif name == "close":
        service.close(session, case, actor, now, _one_arg(command, "a reason"))
    elif name == "reopen":
        _no_args(command)
        service.reopen(session, case, actor, now)
    elif name == "duplicate":
        service.mark_duplicate(session, case, _one_arg(command, "a case id").upper(), actor, now)
    elif name == "cve":
        service.add_cve(session, case, _one_arg(command, "a CVE id"), actor, now)
    elif name == "credit":
        service.set_credit(session, case, " ".join(args), actor, now)


def parse_assess_args(args: tuple[str, ...]) -> tuple[str, date | None]:
    """``severity=high target=2026-12-15`` -> ("high", date(2026, 12, 15)); target optional."""
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("severity", "target"):
            raise TransitionRefused(
                f"/assess takes severity=... and target=YYYY-MM-DD, not {arg!r}")
        values[key] = value
    if "severity" not in values:
        raise TransitionRefused("/assess needs severity=low|medium|high|critical")
    severity = values["severity"].lower()
    target = None
    if "target" in values:
        try:
            target = date.fromisoformat(values["target"])
        except ValueError:
            raise TransitionRefused(f"target must be a date such as 2026-12-15, "
                                    f"not {values['target']!r}") from None
    return severity, target


def _no_args(command: Command) -> None:
    if command.args:
        raise TransitionRefused(f"/{command.name} takes no arguments")


def _one_arg(command: Command, what: str) -> str:
    if len(command.args) != 1:
        raise TransitionRefused(f"/{command.name} takes {what}")
    return command.args[0]
