"""From delivery to receipt: ``mailbot run`` (the real daemon, IDLE) in a process of its own.

Reports are delivered over one LMTP session at a steady rate; for each, the time from the end of
its LMTP transaction (Dovecot has stored it) to the arrival at the SMTP sink of the receipt that
answers it (matched by In-Reply-To).
"""

from __future__ import annotations

import os
import signal
import smtplib
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.corpus import REPO, report
from bench.servers import Mailboxes, Sink
from bench.settings import HOST, TOKEN_KEY, bench_toml

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def run_latency(
    mailboxes: Mailboxes, sink: Sink, workdir: Path, *, reports: int, per_second: float
) -> dict[str, Any]:
    imap = mailboxes.new()
    config = workdir / "latency.toml"
    config.write_text(bench_toml(imap, sink.port, f"sqlite:///{workdir / 'latency.db'}"))
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
