"""``mailbot``: arguments in, text or JSON out. No logic of its own: every command calls the app.

Bad input (config, arguments, an unknown case id) gets a one-line error and exit status 2; a
traceback only with ``--debug``. Heavy imports happen inside the commands so that ``--help`` is
quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mailbot import __version__
from mailbot.cases.vocabulary import CLOSE_REASONS, SEVERITIES, STATUSES
from mailbot.cli_args import date_arg, datetime_arg
from mailbot.errors import ConfigError, MailbotError, StorageKeyError, UsageError

if TYPE_CHECKING:
    from mailbot.app import App
    from mailbot.config import Settings

log = logging.getLogger("mailbot.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CASE_ID_HELP = "a case id, such as SEC-2026-0042"
DEFAULT_CONFIG = "mailbot.toml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mailbot", description="Runs a security@ mailbox: every report becomes a "
                "case with a receipt, replies thread onto it, disclosure deadlines are watched.")
    p.add_argument("--config", metavar="PATH",
                   help=f"the TOML config (default: $MAILBOT_CONFIG or ./{DEFAULT_CONFIG})")
    p.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    p.add_argument("--version", action="version", version=f"mailbot {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                           parser_class=_Parser)

    run = sub.add_parser("run", help="the daemon, until SIGTERM or SIGINT")
    run.add_argument("--once", action="store_true",
                     help="one full cycle (mail, outbox, deadlines), then exit")
    run.add_argument("--dry-run", action="store_true",
                     help="say how many messages wait in each watched folder and what would "
                          "happen to them (imported as history or answered); change nothing")
    run.add_argument("--web", action="store_true",
                     help="also serve the read-only case view (on web.listen)")
    sub.add_parser("migrate", help="bring the database schema to the latest version")
    sub.add_parser("check", help="validate the config and connect to IMAP, SMTP and the database")
    ingest = sub.add_parser("ingest", help="process .eml or mbox files as if they had arrived")
    ingest.add_argument("files", nargs="+", metavar="FILE", type=Path,
                        help="an .eml file (one message) or an mbox file (many)")

    cases = sub.add_parser("cases", help="list, show and change cases")
    csub = cases.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=_Parser)
    lst = csub.add_parser("list", help="the cases, oldest first")
    lst.add_argument("--status", choices=STATUSES, help="only cases in this status")
    lst.add_argument("--at-risk", action="store_true", help="only cases whose deadline is near")
    lst.add_argument("--overdue", action="store_true", help="only cases past their deadline")
    lst.add_argument("--json", action="store_true", help="one JSON array")
    show = csub.add_parser("show", help="one case with its messages and events")
    show.add_argument("id", help=CASE_ID_HELP)
    show.add_argument("--json", action="store_true", help="one JSON object")
    for name, helptext in (("ack", "acknowledge"), ("resolve", "mark resolved"),
                           ("reopen", "reopen a resolved or closed case")):
        csub.add_parser(name, help=helptext).add_argument("id", help=CASE_ID_HELP)
    assess = csub.add_parser("assess", help="record severity and target resolution date")
    assess.add_argument("id", help=CASE_ID_HELP)
    assess.add_argument("--severity", required=True, choices=SEVERITIES, help="how bad it is")
    assess.add_argument("--target", type=date_arg, metavar="YYYY-MM-DD",
                        help="when the fix is expected")
    close = csub.add_parser("close", help="close with a reason")
    close.add_argument("id", help=CASE_ID_HELP)
    close.add_argument("reason", choices=CLOSE_REASONS, help="why it is closed")
    dup = csub.add_parser("duplicate", help="mark as a duplicate of another case and close")
    dup.add_argument("id", help=CASE_ID_HELP)
    dup.add_argument("original", help="the case it duplicates")
    for ending in (csub.choices["resolve"], close, dup):
        ending.add_argument("--quiet", action="store_true",
                            help="do not send the reporter the notice that the case ended")
    cve = csub.add_parser("cve", help="record a CVE id")
    cve.add_argument("id", help=CASE_ID_HELP)
    cve.add_argument("cve", help="such as CVE-2026-12345")
    credit = csub.add_parser("credit", help="record how the reporter wishes to be credited")
    credit.add_argument("id", help=CASE_ID_HELP)
    credit.add_argument("name", help='the name to credit, such as "Jane Doe, Example Org"; '
                        '"none" records that the reporter wishes no credit')
    disclose = csub.add_parser("disclose", help="record the agreed disclosure (embargo) date")
    disclose.add_argument("id", help=CASE_ID_HELP)
    disclose.add_argument("date", metavar="YYYY-MM-DD|none", help="the date, or none to clear it")

    dl = sub.add_parser("deadlines", help="the deadline watch")
    dsub = dl.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    chk = dsub.add_parser("check", help="run the watch once (as if at --now), then send")
    chk.add_argument("--now", type=datetime_arg, metavar="ISO-8601",
                     help="pretend it is this time (with offset, e.g. 2026-11-23T10:00+01:00)")

    auth = sub.add_parser("auth", help="OAuth2 sign-in for the mailbox (see docs/oauth2.md)")
    asub = auth.add_subparsers(dest="action", metavar="ACTION", required=True,
                               parser_class=_Parser)
    login_help = ("device-code sign-in: prints a URL and a code, waits, then stores the refresh "
                  "token in oauth2.refresh_token_file (mode 0600)")
    asub.add_parser("login", help=login_help, description=login_help + '. For oauth2.provider = '
                    '"refresh_token"; run it as the user the daemon runs as.')

    from mailbot.crypto.commands import add_parsers as add_key_parsers

    add_key_parsers(sub)
    sub.add_parser("health", help="is the daemon alive, is the mailbox read, what needs a person")
    web = sub.add_parser("web", help="serve the read-only case view (login required)")
    web.add_argument("--listen", metavar="HOST:PORT",
                     help="where to listen (default: web.listen, 127.0.0.1:8025)")
    wsub = web.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    wsub.add_parser("hash-password", help="read a password, print its argon2 hash for web.users")
    quarantine = sub.add_parser("quarantine", help="messages that failed intake: list, show, retry")
    qsub = quarantine.add_subparsers(dest="action", metavar="ACTION", required=True,
                                     parser_class=_Parser)
    qsub.add_parser("list", help="the quarantined messages").add_argument(
        "--json", action="store_true", help="one JSON array")
    for name, helptext in (("show", "one quarantined message"),
                           ("retry", "process it again from its kept bytes")):
        q = qsub.add_parser(name, help=helptext)
        q.add_argument("entry", type=int, metavar="ID", help="its id in `quarantine list`")
        if name == "show":
            q.add_argument("--json", action="store_true", help="one JSON object")
    sub.add_parser("demo", help="a self-contained demonstration on embedded servers")
    _register_packages(sub)
    _describe(p)
    return p


def _register_packages(sub: Any) -> None:
    """Commands that live in their own packages; each sets ``handler`` on its parser."""
    from mailbot.advisory.cli import register as register_advisory
    from mailbot.pgp.cli import register as register_pgp
    from mailbot.report.cli import register as register_report
    from mailbot.retention.cli import register as register_retention
    from mailbot.securitytxt.cli import register as register_securitytxt

    register_report(sub)
    register_securitytxt(sub)
    register_pgp(sub, open_app=_app)
    register_retention(sub)
    register_advisory(sub, open_app=_app)


def _describe(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every command's --help its description (mailbot.cli_help), unless it has its own."""
    from mailbot.cli_help import DESCRIPTIONS

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                command = f"{path} {name}".strip()
                if not child.description:
                    child.description = DESCRIPTIONS.get(command)
                _describe(child, command)


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return int(_dispatch(args))
    except (ConfigError, UsageError, StorageKeyError) as exc:
        what = {ConfigError: "config error", StorageKeyError: "storage key"}.get(type(exc),
                                                                             "error")
        return _fail(args, exc, EXIT_USAGE, what)
    except MailbotError as exc:
        return _fail(args, exc, EXIT_FAILURE, "error")
    except KeyboardInterrupt:
        return 130


def _fail(args: argparse.Namespace, exc: Exception, status: int, what: str) -> int:
    if args.debug:
        log.exception("%s", what)
    print(f"mailbot: {what}: {exc}", file=sys.stderr)
    return status


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.debug else (
        logging.INFO if args.command in ("run", "deadlines", "web") else logging.WARNING)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "aiosmtplib", "alembic", "imapclient", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING if args.debug else logging.ERROR)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from mailbot.demo import run_demo

        return run_demo()
    if args.command == "web" and args.action == "hash-password":
        from mailbot.web.commands import hash_password_command

        return hash_password_command()
    if args.command == "keys" and args.action == "new-storage-key":
        from mailbot.crypto.commands import new_storage_key

        return new_storage_key(args)
    settings = _load_settings(args)
    if getattr(args, "handler", None) is not None:
        return int(args.handler(settings, args))
    handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "run": _cmd_run, "migrate": _cmd_migrate, "check": _cmd_check, "ingest": _cmd_ingest,
        "cases": _cmd_cases, "deadlines": _cmd_deadlines, "health": _cmd_health,
        "auth": _cmd_auth,
        "web": _cmd_web, "quarantine": _cmd_quarantine,
        "keys": _cmd_keys,
    }
    return handlers[args.command](settings, args)


# Commands that need only the database (and the storage key, where there is one): they do not
# read the IMAP or SMTP secrets, so on-call can run them on a machine that does not hold them.
# `deadlines` sends what its watch queued, so it reads the SMTP ones; `cases purge` may delete a
# case's mail from the mailbox. Every other command (run, check, any command not listed) reads
# both. A new command that needs no server: add it here.
NO_SERVER_SECRETS = frozenset({"cases", "health", "ingest", "migrate", "quarantine", "report",
                               "retention",
                               "keys", "security-txt", "web"})
SOME_SERVER_SECRETS: dict[tuple[str, str | None], frozenset[str]] = {
    ("deadlines", "check"): frozenset({"smtp"}),
    ("cases", "purge"): frozenset({"mailbox"}),
}


def secrets_used(command: str, action: str | None = None) -> frozenset[str]:
    """The sections whose login secrets a command reads (see ``config.load_settings``)."""
    if (command, action) in SOME_SERVER_SECRETS:
        return SOME_SERVER_SECRETS[command, action]
    if command in NO_SERVER_SECRETS:
        return frozenset()
    return frozenset({"mailbox", "smtp"})


def _load_settings(args: argparse.Namespace) -> Settings:
    from mailbot.config import load_settings

    path = args.config or os.environ.get("MAILBOT_CONFIG") or DEFAULT_CONFIG
    return load_settings(path, secrets=secrets_used(args.command, getattr(args, "action", None)))


def _app(settings: Settings, *, migrate: bool = False) -> App:
    from mailbot.app import App
    from mailbot.store import latest_schema_version, schema_version
    from mailbot.store import migrate as do_migrate

    app = App(settings)
    if migrate:
        do_migrate(app.db)
    elif schema_version(app.db) != latest_schema_version():
        raise UsageError(f"the database {settings.database.url} is not at the latest schema; "
                         "run: mailbot migrate")
    app.prepare_storage()
    return app


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from mailbot.daemon import Daemon
    from mailbot.store import Database, acquire_instance_lock

    if args.dry_run:
        return _dry_run(settings)
    # The lock first: a second instance must not touch (or migrate) the running one's database.
    lock = acquire_instance_lock(Database(settings.database.url))
    try:
        app = _app(settings, migrate=True)
        if args.once:
            report = asyncio.run(app.run_once())
            app.beat()  # run from cron, `run --once` is this host's mailbot for `health`
            app.close()
            print(f"mail: {report.intake.opened} new cases, {report.intake.added} added to cases, "
                  f"{report.intake.duplicates} seen before, {report.intake.failed} failed, "
                  f"{report.intake.quarantined} quarantined; outbox: {report.outbox.sent} sent, "
                  f"{report.outbox.waiting} waiting for a retry, {report.outbox.failed} failed; "
                  f"reminders: {report.reminders} queued")
            return EXIT_OK

        async def daemon() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await Daemon(app).run(stop)

        web = None
        if args.web:
            from mailbot.web.commands import web_thread

            web = web_thread(settings)
        try:
            asyncio.run(daemon())
        finally:
            if web is not None:
                web.stop()
        return EXIT_OK
    finally:
        lock.release()


def _dry_run(settings: Settings) -> int:
    from mailbot.checks import waiting_mail
    from mailbot.oauth2.wiring import edge_credentials

    for line in waiting_mail(settings, edge_credentials(settings).imap):
        print(line)
    print("dry run: nothing was changed")
    return EXIT_OK


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.store import Database, migrate

    db = Database(settings.database.url)
    version = migrate(db)
    db.dispose()
    print(f"database at schema version {version}")
    return EXIT_OK


def _cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.checks import run_checks

    results, notes = run_checks(settings)
    for name, problem in results:
        print(f"{name}: {'ok' if problem is None else problem}")
    for name, note in notes:
        print(f"{name}: note: {note}")
    return EXIT_OK if all(problem is None for _, problem in results) else EXIT_FAILURE


def _cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mailbot.ingest import count_messages, ingest, read_messages

    for path in args.files:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
    app = _app(settings, migrate=True)
    total = count_messages(args.files)
    with tqdm(total=total, unit="msg", disable=total < 50 or None, file=sys.stderr) as bar:
        counts = ingest(app.db, app.intake, read_messages(args.files), lambda: bar.update(1))
    app.close()
    print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to ingest")
    return EXIT_OK if "failed" not in counts else EXIT_FAILURE


def _cmd_cases(settings: Settings, args: argparse.Namespace) -> int:
    app = _app(settings)
    try:
        if args.action == "list":
            return _cases_list(app, args)
        if args.action == "show":
            return _cases_show(app, args)
        from mailbot.cli_change import cases_change

        return cases_change(app, args)
    finally:
        app.close()


def _cases_list(app: App, args: argparse.Namespace) -> int:
    from sqlalchemy import or_

    from mailbot.cases.views import list_cases
    from mailbot.deadlines.watch import at_risk_filter, overdue_filter

    now = app.clock.now()
    wanted = []
    if args.at_risk:
        wanted.append(at_risk_filter(app.calendar, app.settings.policy, now))
    if args.overdue:
        wanted.append(overdue_filter(now))
    with app.db.session() as session:
        rows = list_cases(session, status=args.status, where=or_(*wanted) if wanted else None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no cases")
    for row in rows:
        due = _running_due(row, app.calendar.tz)
        flags = f"  [{', '.join(row['flags'])}]" if row["flags"] else ""
        print(f"{row['id']:<16} {row['status']:<13} {due:<27} {row['reporter'] or '-':<32} "
              f"{row['subject'][:60]}{flags}")
    return EXIT_OK


def _running_due(row: dict[str, Any], tz: tzinfo) -> str:
    """The deadline now running, in the team's timezone: ``ack due 2026-11-25 23:59``."""
    key = {"new": "ack_due", "acknowledged": "assessment_due",
           "assessed": "resolution_due"}.get(row["status"])
    value = row.get(key) if key else None
    if not key or not value:
        return ""
    local = datetime.fromisoformat(value).astimezone(tz)
    return f"{key.removesuffix('_due')} due {local:%Y-%m-%d %H:%M}"


def _cases_show(app: App, args: argparse.Namespace) -> int:
    from mailbot.cases.service import get_case
    from mailbot.cases.views import case_detail

    with app.db.session() as session:
        case = get_case(session, args.id.upper())
        if case is None:
            raise UsageError(f"no case {args.id!r}; `mailbot cases list` shows the ids")
        detail = case_detail(session, case, app.db.raw_store,
                             app.settings.policy.max_message_bytes)
    if args.json:
        print(json.dumps(detail, indent=2))
        return EXIT_OK
    lines = [f"{detail['id']}  {detail['status']}  {', '.join(detail['flags'])}"]
    for key in ("reporter", "subject", "received_at", "ack_due", "acknowledged_at",
                "assessment_due", "assessed_at", "severity", "target_date", "close_reason",
                "duplicate_of", "cve", "credit", "credit_consent", "disclosure_date",
                "mentioned_tag"):
        if detail.get(key):
            lines.append(f"  {key:<16} {detail[key]}")
    if detail["possible_duplicates"]:
        lines.append("  possible duplicate of " + ", ".join(
            f"{d['case']} ({d['similarity']:.0%} similar)" for d in detail["possible_duplicates"]))
    lines += ["", f"messages ({len(detail['messages'])}):"]
    for m in detail["messages"]:
        lines.append(f"  {m['date'] or '':<26} {m['direction']:<3} {m['kind']:<16} "
                     f"{m['from'] or '-'} -> {', '.join(m['to'])[:60]}  {m['message_id']}")
        lines.append(f"    subject: {m['subject']}")
        lines += [f"    | {line}" for line in m["text"].strip().splitlines()[:_SHOW_LINES]]
    lines += ["", f"events ({len(detail['events'])}):"]
    for e in detail["events"]:
        extra = " ".join(f"{k}={v}" for k, v in e["detail"].items() if v)
        lines.append(f"  {e['at']:<26} {e['actor']:<28} {e['action']:<20} {extra}")
    # One line per entry (a value that holds a line break is folded), no padding left at the
    # ends of lines, and exactly one newline at the end, as a text tool expects.
    sys.stdout.write("".join(" ".join(line.splitlines()).rstrip() + "\n" for line in lines))
    return EXIT_OK


_SHOW_LINES = 200  # of each message's text in `cases show` (all of it in --json)


def _cmd_deadlines(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from mailbot.app import App
    from mailbot.clock import FixedClock, SystemClock
    from mailbot.store import migrate

    clock = FixedClock(args.now) if args.now else SystemClock()
    app = App(settings, clock=clock)
    migrate(app.db)
    app.prepare_storage()
    try:
        queued = app.watch_deadlines()
        report = asyncio.run(app.drain_outbox(ignore_backoff=True))
    finally:
        app.close()
    print(f"reminders queued: {queued}; outbox: {report.sent} sent, "
          f"{report.waiting} waiting for a retry, {report.failed} failed")
    return EXIT_OK


def _cmd_auth(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.oauth2.device import device_login

    wanted = []
    for side in (settings.mailbox.oauth2, settings.smtp.oauth2):
        if side is not None and side.provider == "refresh_token" and side not in wanted:
            wanted.append(side)
    if not wanted:
        raise UsageError('`mailbot auth login` is for mailbox.auth or smtp.auth = "oauth2" with '
                         'oauth2.provider = "refresh_token"; the other providers need no sign-in')
    for oauth2 in wanted:
        device_login(oauth2, say=lambda text: print(text, flush=True))
    return EXIT_OK


def _cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.web.commands import web_command

    return web_command(settings, args.listen)
def _cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.crypto.commands import rotate

    return rotate(settings, args)


def _cmd_quarantine(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.quarantine.command import quarantine_command

    app = _app(settings)
    try:
        return quarantine_command(app, args.action, getattr(args, "entry", None),
                                  getattr(args, "json", False))
    finally:
        app.close()


def _cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.clock import SystemClock
    from mailbot.health.records import read_status, this_host
    from mailbot.health.verdict import judge
    from mailbot.store import Database, schema_version

    db = Database(settings.database.url)
    try:
        if schema_version(db) is None:
            print("unhealthy\n  database: no mailbot schema in it yet (no daemon has run on it)")
            return EXIT_FAILURE
        with db.session() as session:
            status = read_status(session)
    finally:
        db.dispose()
    verdict = judge(status, now=SystemClock().now(), host=this_host(),
                    poll_seconds=settings.mailbox.poll_seconds)
    print("healthy" if verdict.healthy else "unhealthy")
    for line in verdict.lines:
        print(f"  {line}")
    return EXIT_OK if verdict.healthy else EXIT_FAILURE
