"""``mailbot keys``: make a storage key, and rotate the database onto a new one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mailbot.crypto.keys import new_key_text, read_key_file, write_key_file
from mailbot.errors import StorageKeyError, UsageError


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="the storage key, and reporters' OpenPGP keys",
                          description="The storage key of encryption at rest (docs/encryption.md):"
                                      " make one, rotate onto a new one; reporters' OpenPGP "
                                      "keys: import, list.")
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True,
                               parser_class=type(keys))
    new = ksub.add_parser(
        "new-storage-key", help="print a fresh storage key (base64 of 32 random bytes)",
        description="Print a fresh storage key on stdout, or write it to --out with mode 0600.")
    new.add_argument("--out", type=Path, metavar="FILE",
                     help="write the key to FILE (created with mode 0600; never overwritten)")
    rotate = ksub.add_parser(
        "rotate", help="re-seal everything stored under a new key (resumable)",
        description="Re-seal every stored value under the key in --new-key-file, in batches; "
                    "safe to stop (even kill -9) and run again. The daemon may keep running: "
                    "it learns the new key from the database. Afterwards set [storage] "
                    "key_file to the new key.")
    rotate.add_argument("--new-key-file", type=Path, required=True, metavar="FILE",
                        help="the new key (make it with `mailbot keys new-storage-key --out F`)")
    rotate.add_argument("--batch-size", type=int, default=200, metavar="N",
                        help="rows re-sealed per transaction (default 200)")


def new_storage_key(args: argparse.Namespace) -> int:
    if args.out is None:
        sys.stdout.write(new_key_text())
        return 0
    try:
        key = write_key_file(args.out)
    except FileExistsError:
        raise UsageError(f"{args.out} exists; a storage key is never overwritten") from None
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write it ({exc.strerror})") from None
    print(f"wrote storage key {key.id} to {args.out}", file=sys.stderr)
    return 0


def rotate(settings: Any, args: argparse.Namespace) -> int:
    from mailbot.crypto.rotation import rotate_storage

    if not settings.storage.encrypting:
        raise UsageError('[storage] encryption is "off": there is no key to rotate')
    try:
        new_key = read_key_file(args.new_key_file)
    except StorageKeyError as exc:
        raise UsageError(str(exc)) from None

    def progress(table: str, done: int) -> None:
        print(f"\r{table}: {done} re-sealed", end="", file=sys.stderr, flush=True)

    if args.batch_size < 1:
        raise UsageError("--batch-size: expected a whole number of at least 1")
    report = rotate_storage(settings, new_key, progress, batch=args.batch_size)
    print(file=sys.stderr)
    print(f"re-sealed {report.resealed} values under storage key {new_key.id}"
          + (f"; {report.failed} could not be opened (see the log)" if report.failed else ""))
    print(f"now set [storage] key_file = \"{args.new_key_file}\" (the old key no longer opens "
          "this database)")
    return 1 if report.failed else 0
