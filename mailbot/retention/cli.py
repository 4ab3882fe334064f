"""``mailbot cases purge``, ``mailbot cases export`` and ``mailbot retention apply``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.cli_args import actions_of, datetime_arg
from mailbot.errors import UsageError

if TYPE_CHECKING:
    from mailbot.app import App
    from mailbot.config import Settings


def register(sub: Any) -> None:
    """Add ``purge`` and ``export`` to ``cases``, and the ``retention`` command."""
    cases = actions_of(sub, "cases", "list, show and change cases")
    purge = cases.add_parser(
        "purge", help="erase a case's content; keep its skeleton and a purged event",
        description="Erase the content of a case and all its messages (raw bytes, subjects, "
                    "text, attachment names, the outbox copies of mail about it, the name to "
                    "credit, the events' details); keep the id, dates, deadlines, status, "
                    "severity, flags and each event's time and action, and record who purged "
                    "it. With [retention] purge_mailbox = true, also delete its messages from "
                    "the IMAP folders mailbot reads (inbox and Sent).")
    purge.add_argument("id", help="the case id, e.g. SEC-2026-0042")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=purge_command)
    export = cases.add_parser(
        "export", help="the whole case, decrypted, as mbox or JSON",
        description="Every message as received, plus (json) the case record and its events, "
                    "for another system. The mbox opens in mutt or Thunderbird.")
    export.add_argument("id", help="the case id")
    export.add_argument("--format", choices=("mbox", "json"), required=True,
                        help="mbox: the messages as received; json: the case and its events too")
    export.add_argument("--out", type=Path, metavar="FILE",
                        help="write here (mode 0600); default: stdout for json; mbox needs it")
    export.set_defaults(handler=export_command)
    retention = sub.add_parser(
        "retention", help="purge what the retention policy says",
        description="Purge the cases closed more than [retention] purge_closed_after_days "
                    "days ago, as `cases purge` does; the daemon does this once a day.")
    rsub = retention.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=type(retention))
    apply = rsub.add_parser("apply", help="purge now what the policy says (lists the ids)",
                            description="Purge now the closed cases the retention policy "
                                        "says to purge, and list them.")
    apply.add_argument("--now", type=datetime_arg, metavar="ISO-8601",
                       help="judge as if it were this time (with offset)")
    apply.add_argument("--dry-run", action="store_true", help="list, purge nothing")
    apply.set_defaults(handler=retention_command)


def _open(settings: Settings) -> App:
    from mailbot.app import App
    from mailbot.store import latest_schema_version, schema_version

    app = App(settings)
    if schema_version(app.db) != latest_schema_version():
        app.close()
        raise UsageError(f"the database {settings.database.url} is not at the latest schema; "
                         "run: mailbot migrate")
    app.prepare_storage()
    return app


def _actor(call: str) -> Any:
    from mailbot.cases.service import Actor

    return Actor(f"cli:{getpass.getuser()}", f"cli:{call}")


def purge_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.cases.service import get_case
    from mailbot.retention.purge import purge

    case_id = args.id.upper()
    app = _open(settings)
    try:
        with app.db.session() as session:
            if get_case(session, case_id) is None:
                raise UsageError(f"no case {args.id!r}; `mailbot cases list` shows the ids")
        if not args.yes and not _confirm(case_id):
            print("nothing purged")
            return 1
        result = purge(app.db, case_id, _actor(f"cases purge {case_id}"), app.clock.now())
        removed = None
        if settings.retention.purge_mailbox:
            from mailbot.retention.mailbox import delete_from_mailbox

            removed = delete_from_mailbox(settings.mailbox, app.credentials.imap,
                                          [mid for _, mid in result.message_ids])
    finally:
        app.close()
    print(f"{case_id}: purged ({result.messages} messages"
          + (f"; {removed} deleted from the mailbox" if removed is not None else "") + ")")
    return 0


def _confirm(case_id: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(f"cases purge {case_id} asks before it erases; pass --yes to confirm "
                         "without a terminal")
    answer = input(f"Erase the content of {case_id} and its messages for good? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def export_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.cases.service import get_case
    from mailbot.retention.export import export_json, export_mbox

    if args.format == "mbox" and args.out is None:
        raise UsageError("--format mbox needs --out FILE")
    app = _open(settings)
    try:
        with app.db.session() as session:
            case = get_case(session, args.id.upper())
            if case is None:
                raise UsageError(f"no case {args.id!r}; `mailbot cases list` shows the ids")
            if args.format == "mbox":
                count = export_mbox(session, case, app.db.raw_store, args.out)
                print(f"{case.id}: {count} messages written to {args.out}", file=sys.stderr)
                return 0
            document = export_json(session, case, app.db.raw_store,
                                   settings.policy.max_message_bytes)
    finally:
        app.close()
    text = json.dumps(document, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.touch(mode=0o600)
        args.out.write_text(text)
    return 0


def retention_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.retention.purge import apply_retention

    days = settings.retention.purge_closed_after_days
    if days <= 0:
        print("retention.purge_closed_after_days is 0: nothing is purged automatically")
        return 0
    app = _open(settings)
    try:
        now = args.now or app.clock.now()
        purged = apply_retention(app.db, days, _actor("retention apply"), now,
                                 dry_run=args.dry_run)
    finally:
        app.close()
    verb = "would purge" if args.dry_run else "purged"
    for case_id in purged:
        print(f"{verb} {case_id}")
    print(f"{len(purged)} case{'s' if len(purged) != 1 else ''} {verb.split()[-1]}"
          if purged else "nothing to purge")
    return 0
