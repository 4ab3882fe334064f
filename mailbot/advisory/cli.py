"""``mailbot cases advisory ID --format csaf|osv [--out F]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.cli_args import actions_of
from mailbot.errors import UsageError

if TYPE_CHECKING:
    from mailbot.app import App
    from mailbot.config import Settings


def register(sub: Any, *, open_app: Callable[[Settings], App]) -> None:
    cases = actions_of(sub, "cases")
    p = cases.add_parser(
        "advisory", help="write a draft advisory (CSAF 2.0 or OSV JSON) from a case",
        description="A draft advisory from the case: title, CVE ids, severity, the CVSS "
                    "vectors the reporter claimed, dates, and the reporter's credit only when "
                    "they agreed to be named (credit_consent named).")
    p.add_argument("id", help="a case id, such as SEC-2026-0042")
    p.add_argument("--format", required=True, choices=("csaf", "osv"), help="the format")
    p.add_argument("--out", type=Path, metavar="F", help="write here instead of stdout")
    p.set_defaults(handler=advisory_command, open_app=open_app)


def advisory_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.advisory.build import csaf, osv
    from mailbot.cases.service import get_case
    from mailbot.cases.views import case_detail

    app = args.open_app(settings)
    try:
        with app.db.session() as session:
            case = get_case(session, args.id.upper())
            if case is None:
                raise UsageError(f"no case {args.id!r}; `mailbot cases list` shows the ids")
            detail = case_detail(session, case)
        now = app.clock.now()
    finally:
        app.close()
    if args.format == "osv":
        doc = osv(detail, now)
    else:
        domain = settings.own_address.rpartition("@")[2] or "example.com"
        doc = csaf(detail, now, publisher=_team(settings),
                   namespace=f"https://{domain}")
    text = json.dumps(doc, indent=2) + "\n"
    if args.out:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.out}: cannot write it ({exc.strerror})") from None
    else:
        sys.stdout.write(text)
    return 0


def _team(settings: Settings) -> str:
    from email.utils import parseaddr

    name, addr = parseaddr(settings.smtp.from_address)
    return name or addr
