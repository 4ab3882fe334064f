"""``mailbot report``: the SLA report as HTML, JSON or CSV."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.cli_args import date_arg
from mailbot.errors import UsageError

if TYPE_CHECKING:
    from mailbot.config import Settings

DEFAULT_HTML = "mailbot-report.html"
FORMATS = ("html", "json", "csv")


def register(sub: Any) -> None:
    """Add ``report`` to the CLI's subcommands (``sub`` is argparse's subparsers action)."""
    p = sub.add_parser(
        "report", help="SLA report: acknowledged and assessed on time, breaches, cases at risk",
        description="How well the promises were kept, per month and in total, from the "
        "deadlines stored on the cases. Default: the last 12 months, as HTML to "
        f"{DEFAULT_HTML}.")
    p.add_argument("--since", type=date_arg, metavar="YYYY-MM-DD",
                   help="first day (local) of the period; default: 12 months back")
    p.add_argument("--until", type=date_arg, metavar="YYYY-MM-DD",
                   help="last day (local) of the period, included; default: today")
    p.add_argument("--format", choices=FORMATS, default="html",
                   help="html (one self-contained file with charts), json or csv")
    p.add_argument("--out", metavar="FILE",
                   help=f"where to write ('-' = standard output); default: {DEFAULT_HTML} for "
                   "html, standard output for json and csv")
    p.set_defaults(handler=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from mailbot.clock import SystemClock
    from mailbot.deadlines.calendar import BusinessCalendar
    from mailbot.report.service import Period, build_figures, last_months
    from mailbot.store import Database

    calendar = BusinessCalendar.from_policy(settings.policy)
    now = SystemClock().now()
    default = last_months(calendar.local_date(now))
    period = Period(args.since or default.since, args.until or default.until)
    if period.since > period.until:
        raise UsageError(f"--since {period.since} is after --until {period.until}")
    from mailbot.crypto.provision import reading_sealer

    db = Database(settings.database.url, reading_sealer(settings))
    try:
        figures = build_figures(db, calendar, settings.policy, period, now)
    except (OperationalError, ProgrammingError) as exc:
        # Not a schema check up front: that loads Alembic, a good part of the run's start-up.
        if "no such" in str(exc) or "does not exist" in str(exc) or "UndefinedTable" in str(exc):
            raise UsageError(f"the database {settings.database.url} is not at the latest "
                             "schema; run: mailbot migrate") from None
        raise
    finally:
        db.dispose()
    text = render(figures, args.format)
    out = args.out or (DEFAULT_HTML if args.format == "html" else "-")
    if out == "-":
        sys.stdout.write(text)
    else:
        write_file(Path(out), text)
        print(f"{args.format} report for {period.since} to {period.until} written to {out}")
    return 0


def render(figures: Any, fmt: str) -> str:
    if fmt == "json":
        from mailbot.report.export import to_json_dict

        return json.dumps(to_json_dict(figures), indent=2) + "\n"
    if fmt == "csv":
        from mailbot.report.export import to_csv

        return str(to_csv(figures))
    from mailbot.report.html import render_html

    return render_html(figures)


def write_file(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all (a reader never sees half a report)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
