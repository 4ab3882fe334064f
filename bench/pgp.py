"""``python -m bench.pgp [--reports 100]``: what OpenPGP adds per report and per receipt.

Keys are made on the spot (the team's ed25519/cv25519; reporters' ed25519/cv25519 and RSA-3072).
Three measurements, each over the same reports in clear and encrypted:

- ``unwrap``: the unwrapper alone on one message (decrypt + verify with gpg; for mail in clear,
  the look that finds nothing to open);
- ``seal``: one receipt encrypted to the reporter and signed with the team key (PGP/MIME), next
  to the same receipt with our key attached (a reporter without a key);
- ``intake``: the whole trip of one report (store, unwrap, parse, classify, open the case,
  compose and seal the receipt, commit) on SQLite, encrypted reports from reporters whose keys
  are known against the same reports in clear from reporters without keys.

Medians and 90th percentiles in milliseconds, wall-clock and CPU (this process plus the gpg
processes it ran, which is the steadier figure on a shared machine), as JSON on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailbot.app import App
from mailbot.clock import SystemClock
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.mail.message import FetchedMessage
from mailbot.pgp.directory import OPERATOR, Directory, Entry
from mailbot.pgp.sealer import PgpSealer
from mailbot.pgp.settings import PgpSettings
from mailbot.pgp.unwrapper import PgpUnwrapper
from tests import factories
from tests.pgpkeys import Home, new_home
from tests.pgpmail import inner_text, pgp_mime, plain

TEAM = "security@example.test"
TEXT = ("The password reset form at /account/reset accepts a token for any user; a request "
        "with a valid token for one account resets another's password.\n") * 8


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def cpu_timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, CPU ms): CPU of this process and of the gpg processes it waited for."""
    before, children = time.process_time(), os.times()
    wall = timed(call)
    after = os.times()
    child = (after.children_user - children.children_user
             + after.children_system - children.children_system)
    return wall, (time.process_time() - before + child) * 1000


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1], 2), "n": len(ordered)}


def reports(reporter: Home, address: str, fpr: str, team_fpr: str, n: int,
            tag: str) -> tuple[list[bytes], list[bytes]]:
    clear, sealed = [], []
    for i in range(n):
        head = [("From", f"Reporter <{address}>"), ("To", TEAM),
                ("Subject", f"report {tag} {i}"),
                ("Date", format_datetime(datetime.now(UTC))),
                ("Message-ID", f"<{tag}-{i}@reporter.example>")]
        clear.append(plain(head, TEXT.replace("\n", "\r\n").encode()))
        inner = inner_text(TEXT, subject=f"report {tag} {i}")
        sealed.append(pgp_mime([(k, v.replace(f"{tag}-", f"{tag}-enc-")) for k, v in head],
                               reporter.encrypt(inner, to=team_fpr, sign_as=fpr)))
    return clear, sealed


def one_trip(app: App, raw: bytes, uid: int) -> tuple[float, float]:
    from mailbot.intake.pipeline import process

    intake = app.intake
    fetched = FetchedMessage(raw=raw, folder="INBOX", uidvalidity=1, uid=uid,
                             internal_date=datetime.now(UTC))

    def run() -> None:
        with app.db.session() as session:
            process(session, fetched, intake)

    return cpu_timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pgp", description=__doc__)
    parser.add_argument("--reports", type=int, default=100, help="reports per kind of key")
    args = parser.parse_args()
    homes: list[Home] = []
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}, "
                   f"Python {platform.python_version()}",
        "reports": args.reports, "load_average_before": round(os.getloadavg()[0], 1)}
    try:
        team = new_home()
        homes.append(team)
        team_fpr = team.new_key(TEAM)
        settings = PgpSettings(home=str(team.path), key=team_fpr)
        for algo in ("ed25519", "rsa3072"):
            reporter = new_home()
            homes.append(reporter)
            result[algo] = measure(team, team_fpr, settings, reporter, algo, args.reports)
    finally:
        for home in homes:
            home.close()
    result["load_average_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))


def measure(team: Home, team_fpr: str, settings: PgpSettings, reporter: Home, algo: str,
            n: int) -> dict[str, Any]:
    address = f"{algo}@reporter.example"
    fpr = reporter.new_key(address, algo=algo)
    reporter.import_(team.public(team_fpr))
    team.import_(reporter.public(fpr))
    clear, sealed = reports(reporter, address, fpr, team_fpr, n, algo)
    unwrapper = PgpUnwrapper(settings, team_keys=(), clock=SystemClock())
    sealer = PgpSealer(settings, own_address=TEAM)
    receipt = clear[0]
    part: dict[str, Any] = {
        "unwrap_clear": stats([timed(lambda r=r: unwrapper.unwrap(r)) for r in clear]),
        "unwrap_encrypted_cpu": stats([cpu_timed(lambda r=r: unwrapper.unwrap(r))[1]
                                       for r in sealed]),
        "seal_with_our_key": stats([timed(lambda: sealer.seal(
            receipt, recipients=["nobody@reporter.example"], kind="receipt"))
            for _ in range(n)]),
    }
    Directory(settings.home).put(Entry(address, fpr, OPERATOR, "bench"))
    part["seal_encrypted_cpu"] = stats([cpu_timed(lambda: sealer.seal(
        receipt, recipients=[address], kind="receipt"))[1] for _ in range(n)])
    part.update(intake_pair(settings, clear, sealed, address))
    return part


def intake_pair(settings: PgpSettings, clear: list[bytes], sealed: list[bytes],
                address: str) -> dict[str, Any]:
    """The trip of a report in clear (its sender has no key: the receipt carries ours) and
    encrypted (its sender's key known: the receipt is encrypted and signed), one of each in
    turn so that both see the same load on a shared machine."""
    assert Directory(settings.home).get(address) is not None
    renamed = [m.replace(address.encode(), b"nokey-" + address.encode(), 1) for m in clear]
    with tempfile.TemporaryDirectory(prefix="bench-pgp-") as tmp:
        apps = []
        for name in ("clear", "encrypted"):
            base = factories.settings(
                Path(tmp) / name, MailboxSettings(host="127.0.0.1", username=TEAM),
                SmtpSettings(host="127.0.0.1", from_address=f"Example Security <{TEAM}>"),
                receipts_per_sender_per_day=1_000_000, receipts_per_hour=1_000_000)
            (Path(tmp) / name).mkdir()
            apps.append(factories.app(dataclasses.replace(base, pgp=settings)))
        try:
            runs: dict[str, list[tuple[float, float]]] = {"clear": [], "encrypted": []}
            for uid, (plain_report, sealed_report) in enumerate(zip(renamed, sealed,
                                                                    strict=True), start=1):
                runs["clear"].append(one_trip(apps[0], plain_report, uid))
                runs["encrypted"].append(one_trip(apps[1], sealed_report, uid))
        finally:
            for app in apps:
                app.close()
    out: dict[str, Any] = {}
    for name, values in runs.items():
        out[f"intake_{name}_wall"] = stats([w for w, _ in values])
        out[f"intake_{name}_cpu"] = stats([c for _, c in values])
    out["added_per_encrypted_report_cpu_ms"] = round(
        out["intake_encrypted_cpu"]["median_ms"] - out["intake_clear_cpu"]["median_ms"], 2)
    out["added_per_encrypted_report_wall_ms"] = round(
        out["intake_encrypted_wall"]["median_ms"] - out["intake_clear_wall"]["median_ms"], 2)
    return out


if __name__ == "__main__":
    main()
