"""The backlog and the large message: the floor and mailbot's intake, each in a worker process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.corpus import REPO, Corpus, large_report, report
from bench.servers import Mailboxes, Sink
from bench.settings import Imap


def worker(spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run one bench.worker job; its result, or RuntimeError with the tail of its log."""
    with open(log, "ab") as err:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", json.dumps(spec)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            check=False,
        )
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench.worker {spec['job']} failed ({done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_backlog(
    mailboxes: Mailboxes,
    sink: Sink,
    corpus: Corpus | None,
    messages: int,
    workdir: Path,
    *,
    profile: Path | None = None,
) -> dict[str, Any]:
    """``messages`` waiting in a fresh mailbox; the floor before and after mailbot's intake."""
    imap = mailboxes.new()
    started = time.perf_counter()
    source = corpus.messages(messages, f"b{messages}") if corpus else _synthetic(messages)
    loaded = mailboxes.load(imap, source)
    load_seconds = time.perf_counter() - started
    waiting = mailboxes.count(imap)
    log = workdir / f"backlog-{messages}.log"
    common = {"imap": imap.as_dict(), "batch_size": 100}
    floors = [worker({"job": "floor", **common}, log)]
    sink.clear()
    mine = worker(
        {
            "job": "intake",
            **common,
            "smtp_port": sink.port,
            "db_url": f"sqlite:///{workdir / f'backlog-{messages}.db'}",
            "profile": str(profile) if profile else None,
        },
        log,
    )
    floors.append(worker({"job": "floor", **common}, log))
    sink.clear()
    clear = worker(
        {
            "job": "intake",
            **common,
            "smtp_port": sink.port,
            "db_url": f"sqlite:///{workdir / f'backlog-{messages}-clear.db'}",
            "encryption": "off",
        },
        log,
    )
    floor = min(floors, key=lambda f: f["seconds"])
    return {
        "messages": messages,
        "loaded": loaded,
        "waiting": waiting,
        "load_seconds": load_seconds,
        "floor": floor,
        "floor_runs_seconds": [f["seconds"] for f in floors],
        "mailbot": mine,
        "mailbot_unencrypted": clear,
        "sealing_cost": mine["seconds"] / clear["seconds"] - 1,
        "sink_received": sink.received,
        "ratio": mine["seconds"] / floor["seconds"],
        "read_ratio": mine["read_seconds"] / floor["seconds"],
        "cpu_ratio": mine["cpu_seconds"] / floor["cpu_seconds"],
    }


def _synthetic(messages: int) -> Any:
    return (report(n, "synthetic") for n in range(messages))


def run_size(mailboxes: Mailboxes, sink: Sink, size: int, workdir: Path) -> dict[str, Any]:
    """One message of ``size`` bytes, delivered over LMTP, through the floor and the intake."""
    imap: Imap = mailboxes.new()
    raw = large_report(size)
    mailboxes.deliver(imap, raw)
    log = workdir / "size.log"
    common = {"imap": imap.as_dict(), "batch_size": 100}
    floor = worker({"job": "floor", **common}, log)
    sink.clear()
    mine = worker(
        {
            "job": "intake",
            **common,
            "smtp_port": sink.port,
            "db_url": f"sqlite:///{workdir / 'size.db'}",
        },
        log,
    )
    return {
        "bytes": len(raw),
        "floor": floor,
        "mailbot": mine,
        "peak_over_size": mine["rss_peak_delta"] / len(raw),
        "floor_peak_over_size": floor["rss_peak_delta"] / len(raw),
    }
