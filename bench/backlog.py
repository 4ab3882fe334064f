"""The backlog and the large message: the floor and mailbot's intake, each in a worker process."""

from __future__ import annotations

import json
import statistics
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
    repeats: int = 1,
    profile: Path | None = None,
) -> dict[str, Any]:
    """``messages`` waiting in a fresh mailbox: the floor, then mailbot's intake ``repeats``
    times (each into a fresh database, each followed by the floor again), then the intake once
    with encryption at rest off.

    Each intake's ratio is its time over the faster of the floors just before and just after it
    (the same run, side by side, so a change in the machine's load hits both). The intakes time
    their steps (``bench.split``); the median run's ratio, figures and steps are the result.
    """
    imap = mailboxes.new()
    started = time.perf_counter()
    source = corpus.messages(messages, f"b{messages}") if corpus else _synthetic(messages)
    loaded = mailboxes.load(imap, source)
    load_seconds = time.perf_counter() - started
    waiting = mailboxes.count(imap)
    log = workdir / f"backlog-{messages}.log"
    common = {"imap": imap.as_dict(), "batch_size": 100}
    floors = [worker({"job": "floor", **common}, log)]
    intakes = []
    for n in range(max(1, repeats)):
        sink.clear()
        mine = worker(
            {
                "job": "intake",
                **common,
                "smtp_port": sink.port,
                "db_url": f"sqlite:///{workdir / f'backlog-{messages}-{n}.db'}",
                "profile": str(profile) if profile and n == 0 else None,
                "split": True,
            },
            log,
        )
        mine["sink_received"] = sink.received
        intakes.append(mine)
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
    ratios = [
        mine["seconds"] / min(floors[n]["seconds"], floors[n + 1]["seconds"])
        for n, mine in enumerate(intakes)
    ]
    middle = sorted(range(len(ratios)), key=lambda n: ratios[n])[len(ratios) // 2]
    mine = intakes[middle]
    floor = min(floors[middle : middle + 2], key=lambda f: f["seconds"])
    return {
        "messages": messages,
        "loaded": loaded,
        "waiting": waiting,
        "load_seconds": load_seconds,
        "floor": floor,
        "floor_runs_seconds": [f["seconds"] for f in floors],
        "mailbot": mine,
        "mailbot_runs": intakes,
        "mailbot_unencrypted": clear,
        "sealing_cost": mine["seconds"] / clear["seconds"] - 1,
        "sink_received": mine["sink_received"],
        "ratio": ratios[middle],
        "ratios": ratios,
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        "ratio_max": max(ratios),
        "read_ratio": mine["read_seconds"] / floor["seconds"],
        "cpu_ratio": mine["cpu_seconds"] / floor["cpu_seconds"],
        "split": _median_split([m["split"] for m in intakes if m.get("split")]),
    }


def _median_split(splits: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per step, the median over the runs of its milliseconds per message."""
    if not splits:
        return None
    out: dict[str, Any] = {"runs": len(splits), "missing": splits[0].get("missing", [])}
    for clock in ("wall_ms_per_message", "cpu_ms_per_message"):
        out[clock] = {
            step: statistics.median(s[clock][step] for s in splits) for step in splits[0][clock]
        }
    return out


def run_memory(
    mailboxes: Mailboxes,
    sink: Sink,
    corpus: Corpus | None,
    sizes: tuple[int, ...],
    workdir: Path,
    known: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """mailbot's peak RSS over a backlog of each size (one intake each; a backlog run of that
    size already made is used as it is): the memory must not grow with the backlog."""
    peaks: dict[int, int] = {}
    for size in sizes:
        if size in known:
            peaks[size] = known[size]["mailbot"]["rss_peak_delta"]
            continue
        print(f"   memory: {size} messages", file=sys.stderr, flush=True)
        imap = mailboxes.new()
        source = corpus.messages(size, f"m{size}") if corpus else _synthetic(size)
        mailboxes.load(imap, source)
        sink.clear()
        mine = worker(
            {
                "job": "intake",
                "imap": imap.as_dict(),
                "batch_size": 100,
                "smtp_port": sink.port,
                "db_url": f"sqlite:///{workdir / f'memory-{size}.db'}",
            },
            workdir / f"memory-{size}.log",
        )
        peaks[size] = mine["rss_peak_delta"]
    smallest, largest = min(sizes), max(sizes)
    return {
        "sizes": list(sizes),
        "rss_peak_delta": {str(size): peak for size, peak in peaks.items()},
        "growth": peaks[largest] / max(1, peaks[smallest]),
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
