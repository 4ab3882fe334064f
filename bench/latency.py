"""From delivery to receipt: ``mailbot run`` (the real daemon, IDLE) in a process of its own.

Reports are delivered over one LMTP session at a steady rate; for each, the time from the end of
its LMTP transaction (Dovecot has stored it) to the arrival at the SMTP sink of the receipt that
answers it (matched by In-Reply-To).

Then the team answers some of those cases from the shared mailbox, one at a time: a reply filed
in the Sent folder (IMAP APPEND, as a mail client files what it sent), and the time from the end
of the APPEND to the case's acknowledgement in the database. The daemon's poll interval is the
default minute, so anything much under that is IDLE on the Sent folder at work.
"""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from bench.corpus import REPO, report
from bench.servers import Mailboxes, Sink
from bench.settings import HOST, TOKEN_KEY, Imap, bench_toml

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
ACK_TIMEOUT = 90.0  # longer than a poll interval: a missed IDLE shows as a slow ack, not a hang
SENT = "Sent"


def run_latency(
    mailboxes: Mailboxes, sink: Sink, workdir: Path, *, reports: int, per_second: float,
    sent_replies: int = 0,
) -> dict[str, Any]:
    imap = mailboxes.new()
    config = workdir / "latency.toml"
    database = workdir / "latency.db"
    config.write_text(bench_toml(imap, sink.port, f"sqlite:///{database}"))
    env = {
        **os.environ,
        "MAILBOT_BENCH_IMAP_PASSWORD": imap.password,
        "MAILBOT_BENCH_TOKEN_KEY": TOKEN_KEY,
    }
    log_path = workdir / "latency-daemon.log"
    sink.clear()
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        started = time.monotonic()
        mailboxes.deliver(imap, report(0, "warm-up"))
        if not sink.wait_for(1, READY_TIMEOUT):
            raise RuntimeError(
                f"the daemon sent no receipt within {READY_TIMEOUT:.0f} s; see {log_path}"
            )
        ready = time.monotonic() - started
        sink.clear()
        delivered = _deliver_steadily(mailboxes, imap.username, reports, per_second)
        sink.wait_for(reports, timeout=30.0)
        acks = _acknowledge_from_sent(imap, database, list(delivered)[:sent_replies])
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            stopped = daemon.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            stopped = daemon.wait()
    latencies, missing = [], 0
    for message_id, at in delivered.items():
        arrival = sink.arrival_of(message_id)
        if arrival is None:
            missing += 1
        else:
            latencies.append(arrival.at - at)
    return {
        "reports": reports,
        "per_second": per_second,
        "first_receipt_seconds": ready,
        "receipts": len(latencies),
        "missing": missing,
        **_stats(latencies),
        "sent_replies": len(acks),
        "sent_ack": _stats([a for a in acks if a is not None]),
        "sent_ack_missing": sum(a is None for a in acks),
        "daemon_exit": stopped,
    }


def _deliver_steadily(
    mailboxes: Mailboxes, username: str, reports: int, per_second: float
) -> dict[str, float]:
    """Deliver ``reports`` at ``per_second``; the instant each LMTP transaction ended."""
    delivered: dict[str, float] = {}
    start = time.monotonic()
    with smtplib.LMTP(HOST, mailboxes.server.lmtp_port, timeout=60) as lmtp:
        for n in range(reports):
            wait = start + n / per_second - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            raw = report(n, "latency")
            lmtp.sendmail(f"reporter-latency-{n}@reporter.example", [username], raw)
            delivered[f"<bench-latency-{n}@reporter.example>"] = time.monotonic()
    return delivered


def _acknowledge_from_sent(
    imap: Imap, database: Path, report_ids: list[str]
) -> list[float | None]:
    """File a team reply to each report in Sent, one at a time; seconds until it acknowledged
    the case (None: not within ACK_TIMEOUT)."""
    took: list[float | None] = []
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        with IMAPClient(HOST, port=imap.port, ssl=False, timeout=30) as client:
            client.login(imap.username, imap.password)
            for n, report_id in enumerate(report_ids):
                case = _case_of(db, report_id)
                client.append(SENT, _team_reply(n, report_id, imap.username), flags=[b"\\Seen"])
                filed = time.monotonic()
                while not _acknowledged(db, case):
                    if time.monotonic() - filed > ACK_TIMEOUT:
                        break
                    time.sleep(0.005)
                else:
                    took.append(time.monotonic() - filed)
                    continue
                took.append(None)
    finally:
        db.close()
    return took


def _case_of(db: sqlite3.Connection, message_id: str) -> str:
    row = db.execute("SELECT case_id FROM messages WHERE message_id = ? AND direction = 'in'",
                     (message_id,)).fetchone()
    if row is None:
        raise RuntimeError(f"no case for {message_id}")
    return str(row[0])


def _acknowledged(db: sqlite3.Connection, case: str) -> bool:
    row = db.execute("SELECT acknowledged_at FROM cases WHERE id = ?", (case,)).fetchone()
    return row is not None and row[0] is not None


def _team_reply(n: int, report_id: str, mailbox: str) -> bytes:
    """A reply sent from the shared mailbox itself, as the team's mail client files it."""
    return (
        f"From: Example Security <{mailbox}>\r\n"
        f"To: reporter-latency-{n}@reporter.example\r\n"
        f"Subject: Re: Benchmark report {n}: XSS in the search box\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: <bench-sent-{n}@example.test>\r\n"
        f"In-Reply-To: {report_id}\r\n"
        f"References: {report_id}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Thank you, we are looking into it.\r\n"
    ).encode()


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_seconds": None, "p95_seconds": None, "max_seconds": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_seconds": statistics.median(ordered),
        "p95_seconds": p95,
        "max_seconds": ordered[-1],
        "min_seconds": ordered[0],
    }
