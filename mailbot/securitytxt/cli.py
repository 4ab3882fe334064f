"""``mailbot security-txt``: an RFC 9116 file from the config, signed when PGP is configured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbot.config import Settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "security-txt", help="write an RFC 9116 security.txt from the config",
        description="Contact, Expires ([securitytxt] expires_days from now), Encryption, "
        "Policy, Acknowledgments, Preferred-Languages and Canonical from the config; an "
        "OpenPGP cleartext signature with the team key when [pgp] is configured.")
    p.add_argument("--out", metavar="FILE", help="where to write (default: standard output)")
    p.set_defaults(handler=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.clock import SystemClock
    from mailbot.report.cli import write_file
    from mailbot.securitytxt.build import build_security_txt

    text = build_security_txt(settings, SystemClock().now())
    if settings.pgp.configured:
        from mailbot.securitytxt.sign import clearsign

        text = clearsign(text, settings.pgp)
    if args.out and args.out != "-":
        write_file(Path(args.out), text)
        print(f"security.txt written to {args.out}"
              + (" (signed)" if settings.pgp.configured else ""))
    else:
        sys.stdout.write(text)
    return 0
