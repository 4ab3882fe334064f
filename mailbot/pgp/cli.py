"""``mailbot keys import FILE``, ``mailbot keys list`` and ``mailbot cases retry-decrypt [ID]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbot.cli_args import actions_of
from mailbot.errors import UsageError

if TYPE_CHECKING:
    from mailbot.app import App
    from mailbot.config import Settings


def register(sub: Any, *, open_app: Callable[[Settings], App]) -> None:
    """Add the PGP actions to ``keys`` and ``cases`` (made here when no one made them yet).
    ``open_app``: how the CLI opens the app on a database at the latest schema."""
    keys = actions_of(sub, "keys", "keys: reporters' OpenPGP keys (and the storage key)")
    imp = keys.add_parser(
        "import", help="record a reporter's OpenPGP public key (mail to them is encrypted)",
        description="Import the public key(s) in FILE into [pgp] home and record each for the "
                    "addresses on it (or only --address). Keys imported here are pinned: a key "
                    "that arrives by mail never replaces them.")
    imp.add_argument("file", type=Path, metavar="FILE", help="an armored or binary public key")
    imp.add_argument("--address", help="record the key for this address only (it must be on "
                                       "the key)")
    imp.set_defaults(handler=import_command)
    lst = keys.add_parser("list", help="the reporters' keys mailbot encrypts to",
                          description="Each address with the key mail to it is encrypted to, "
                                      "where the key came from, and when it expires.")
    lst.add_argument("--json", action="store_true", help="one JSON array")
    lst.set_defaults(handler=list_command)
    cases = actions_of(sub, "cases", "list, show and change cases")
    retry = cases.add_parser(
        "retry-decrypt", help="decrypt again the cases flagged undecryptable (after a key fix)",
        description="Reprocess the messages of undecryptable cases with the current key and "
                    "passphrase. Nothing is created or sent twice.")
    retry.add_argument("id", nargs="?", help="one case id (default: every undecryptable case)")
    retry.set_defaults(handler=retry_command, open_app=open_app)


def _pgp(settings: Settings) -> Any:
    from mailbot.pgp.gpg import Gpg

    if not settings.pgp.configured:
        raise UsageError("PGP is not configured: set [pgp] home and key")
    return Gpg(settings.pgp)


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.pgp.directory import OPERATOR, Directory, Entry

    gpg = _pgp(settings)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror})") from None
    found = gpg.scan(data)
    if not found:
        raise UsageError(f"{args.file}: no OpenPGP public key in it")
    if any(k.secret for k in found):
        raise UsageError(f"{args.file}: holds a secret key; import only public keys")
    address = (args.address or "").strip().lower()
    if address and not any(address in k.addresses for k in found):
        raise UsageError(f"{args.file}: no key in it carries the address {address}")
    imported = set(gpg.import_for(data, address))
    directory = Directory(settings.pgp.home)
    now = datetime.now(UTC).isoformat()
    recorded = 0
    for key in found:
        if key.fingerprint not in imported:
            print(f"{key.fingerprint}: not imported by gpg", file=sys.stderr)
            continue
        for addr in [address] if address else list(key.addresses):
            if addr in key.addresses:
                directory.put(Entry(addr, key.fingerprint, OPERATOR, now))
                print(f"{addr}: {key.fingerprint}")
                recorded += 1
    return 0 if recorded else 1


def list_command(settings: Settings, args: argparse.Namespace) -> int:
    from mailbot.pgp.directory import Directory

    gpg = _pgp(settings)
    rows = []
    for address, entry in sorted(Directory(settings.pgp.home).all().items()):
        info = gpg.key(entry.fingerprint)
        rows.append({"address": address, "fingerprint": entry.fingerprint,
                     "source": entry.source, "recorded_at": entry.at,
                     "expires": info.expires.isoformat() if info and info.expires else None,
                     "usable": bool(info and not info.expired and not info.revoked)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"team key: {settings.pgp.key}")
    for row in rows:
        state = "" if row["usable"] else "  (missing, expired or revoked)"
        print(f"{row['address']}  {row['fingerprint']}  from {row['source']}"
              f"{'  expires ' + str(row['expires'])[:10] if row['expires'] else ''}{state}")
    if not rows:
        print("no reporters' keys yet")
    return 0


def retry_command(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mailbot.cases import service
    from mailbot.cases.models import Message
    from mailbot.intake.pipeline import reread
    from mailbot.intake.sealed import UNDECRYPTABLE, undecryptable_cases

    _pgp(settings)
    app = args.open_app(settings)
    failed = 0
    try:
        intake = app.intake  # before any session: it may read the token key in one of its own
        with app.db.session() as session:
            if args.id:
                if service.get_case(session, args.id) is None:
                    raise UsageError(f"no case {args.id}")
                ids = [args.id]
            else:
                ids = undecryptable_cases(session)
        if not ids:
            print("no undecryptable cases")
        for case_id in ids:
            with app.db.session() as session:
                messages = [m for m in session.scalars(
                    select(Message).where(Message.case_id == case_id,
                                          Message.direction == "in").order_by(Message.id))
                            if UNDECRYPTABLE in m.flags]
                if not messages:
                    print(f"{case_id}: nothing undecryptable")
                for message in messages:
                    reason = reread(session, message, intake)
                    print(f"{case_id}: message {message.id}: "
                          f"{'decrypted' if reason is None else 'still undecryptable: ' + reason}")
                    failed += reason is not None
    finally:
        app.close()
    return 0 if not failed else 1
