"""``mailbot cases ack|assess|resolve|close|reopen|duplicate|cve|credit|disclose ID ...``: the
team's email commands from the shell, stamped now and by ``cli:<user>``."""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from mailbot.errors import UsageError

if TYPE_CHECKING:
    from mailbot.app import App

EXIT_OK = 0


def cases_change(app: App, args: argparse.Namespace) -> int:
    from mailbot.cases import service
    from mailbot.cases.commands import Command, apply_command, notifies_reporter
    from mailbot.deadlines.clocks import update_clock
    from mailbot.notices import queue_status_notice

    words: tuple[str, ...] = ()
    if args.action == "assess":
        words = (f"severity={args.severity}",)
        if args.target:
            words += (f"target={args.target.isoformat()}",)
    elif args.action == "close":
        words = (args.reason,)
    elif args.action == "duplicate":
        words = (args.original,)
    elif args.action == "cve":
        words = (args.cve,)
    elif args.action == "credit":
        words = (args.name,)
    elif args.action == "disclose":
        words = (args.date,)
    if getattr(args, "quiet", False):
        words += ("quiet",)
    command = Command(args.action, words, " ".join(("/" + args.action, *words)))
    # The source names the call, so the audit trail shows what the operator asked for.
    call = " ".join(("cases", args.action, args.id.upper(), *words))
    actor = service.Actor(f"cli:{getpass.getuser()}", f"cli:{call}")
    policy = app.settings.policy
    now = app.clock.now()
    writer = app.writer  # before the transaction: it may read the token key in one of its own
    with app.db.session() as session:
        case = service.get_case(session, args.id.upper(), for_update=True)
        if case is None:
            raise UsageError(f"no case {args.id!r}; `mailbot cases list` shows the ids")
        try:
            apply_command(session, case, command, actor, now,
                          assessment_due_after=lambda at: app.calendar.add_business_days(
                              at, policy.assessment_business_days),
                          end_of_day=app.calendar.end_of_day,
                          update_due_after=update_clock(app.calendar, policy))
        except service.TransitionRefused as exc:
            raise UsageError(str(exc)) from None
        service.record(session, case, actor, "command", {"command": command.line}, now)
        if notifies_reporter(command):
            queue_status_notice(session, case, writer, now)
        status = case.status
    print(f"{args.id.upper()}: {status}")
    return EXIT_OK
