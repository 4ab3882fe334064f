"""``python -m bench [--quick]``: every benchmark against real servers, a table and a JSON file.

Parts (``--only`` picks some): backlog, latency, scale, size, startup, report. The full run takes
about ten minutes on two cores; ``--quick`` runs each part with tiny numbers in well under a
minute, to prove the benchmark still works (tests/integration/test_bench_quick.py), not to
measure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.backlog_table import MEMORY_GROWTH, backlog_rows
from bench.corpus import DEFAULT_CORPUS, REPO, Corpus
from bench.table import Row, print_table
from bench.table import mb as _mb
from bench.table import ms as _ms
from bench.table import row as _row
from bench.table import seconds as _s

PARTS = ("backlog", "latency", "scale", "size", "startup", "report")
RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Plan:
    backlog: tuple[int, ...]
    latency_reports: int
    latency_rate: float
    sent_replies: int
    cases: int
    size: int
    startup_runs: int
    report_cases: int = 100_000
    report_runs: int = 3
    backlog_runs: int = 3  # intakes of the largest backlog, each beside the floor
    memory: tuple[int, ...] = (2_500, 10_000)  # backlogs whose peak memory must be the same


FULL = Plan((2_500, 10_000), 200, 5.0, 20, 100_000, 25_000_000, 10)
QUICK = Plan((10, 40), 5, 10.0, 2, 500, 500_000, 2, report_cases=400, report_runs=1,
             memory=(10, 40))

# Targets (docs/design.md, "Performance targets"); the backlog's are in bench.backlog_table.
LATENCY_MEDIAN = 0.3
LATENCY_P95 = 0.6
SENT_ACK_SECONDS = 2.0  # a reply filed in Sent acknowledges its case within 2 s (every one)
SCALE_SECONDS = 0.1
SIZE_FACTOR = 5.0
STARTUP_SECONDS = 0.3
REPORT_SECONDS = 2.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny numbers: proves it runs")
    p.add_argument(
        "--only",
        default=",".join(PARTS),
        help=f"comma-separated parts to run (default: all of {', '.join(PARTS)})",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="folder of real messages (default: the repository's tests/data/corpus); "
        "without it the backlog uses generated reports",
    )
    p.add_argument("--backlog", type=int, help="the largest backlog (the smallest is a quarter)")
    p.add_argument("--runs", type=int, help="intakes of the largest backlog (default 3)")
    p.add_argument(
        "--memory",
        help="comma-separated backlog sizes whose peak memory is compared "
        "(default 2500,10000; a size the backlog runs anyway is not run again)",
    )
    p.add_argument("--cases", type=int, help="cases in the scale part")
    p.add_argument(
        "--json", type=Path, help="where to write the results (default: bench/results/<time>.json)"
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write pyinstrument HTML profiles of the backlog intake here",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = p.parse_args(argv)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    for part in args.parts:
        if part not in PARTS:
            p.error(f"unknown part {part!r}; expected some of {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.backlog:
        plan = dataclasses.replace(plan, backlog=(max(1, args.backlog // 4), args.backlog))
    if args.cases:
        plan = dataclasses.replace(plan, cases=args.cases)
    if args.runs:
        plan = dataclasses.replace(plan, backlog_runs=args.runs)
    if args.memory:
        plan = dataclasses.replace(plan, memory=tuple(int(n) for n in args.memory.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "plan": dataclasses.asdict(plan),
        "commit": _commit(),
        "machine": machine(),
    }
    try:
        with contextlib.ExitStack() as stack:
            run_parts(args, plan, workdir, stack, results)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_after"] = _load()
    results["table"] = table(results)
    print_table(results["table"])
    out = args.json or RESULTS / f"{results['started'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults: {out}")
    return 0


def run_parts(
    args: argparse.Namespace,
    plan: Plan,
    workdir: Path,
    stack: contextlib.ExitStack,
    results: dict[str, Any],
) -> None:
    from bench.servers import Mailboxes, Sink, Unavailable

    needs_mail = {"backlog", "latency", "size"} & set(args.parts)
    mailboxes = sink = None
    if needs_mail:
        try:
            mailboxes = Mailboxes()
            stack.callback(mailboxes.stop)
            results["machine"]["dovecot"] = mailboxes.version
        except Unavailable as exc:
            for part in needs_mail:
                results[part] = {"skipped": str(exc)}
        sink = Sink().start()
        stack.callback(sink.stop)
    if "startup" in args.parts:
        _part(results, "startup", lambda: _startup(plan))
    if mailboxes is not None and sink is not None:
        if "backlog" in args.parts:
            _part(results, "backlog", lambda: _backlog(args, plan, mailboxes, sink, workdir))
        if "size" in args.parts:
            from bench.backlog import run_size

            _part(results, "size", lambda: run_size(mailboxes, sink, plan.size, workdir))
        if "latency" in args.parts:
            from bench.latency import run_latency

            _part(
                results,
                "latency",
                lambda: run_latency(
                    mailboxes,
                    sink,
                    workdir,
                    reports=plan.latency_reports,
                    per_second=plan.latency_rate,
                    sent_replies=plan.sent_replies,
                ),
            )
    if "scale" in args.parts:
        _part(results, "scale", lambda: _scale(plan, workdir, stack))
    if "report" in args.parts:
        from bench.report import run_report

        _part(results, "report",
              lambda: run_report(workdir, plan.report_cases, runs=plan.report_runs))


def _part(results: dict[str, Any], name: str, run: Callable[[], dict[str, Any]]) -> None:
    print(f"-- {name} ...", file=sys.stderr, flush=True)
    results[name] = run()


def _startup(plan: Plan) -> dict[str, Any]:
    from bench.startup import run_startup

    return run_startup(plan.startup_runs)


def _backlog(
    args: argparse.Namespace, plan: Plan, mailboxes: Any, sink: Any, workdir: Path
) -> dict[str, Any]:
    from bench.backlog import run_backlog

    corpus = None
    try:
        corpus = Corpus.load(args.corpus)
    except FileNotFoundError as exc:
        print(f"{exc}: the backlog uses generated reports instead", file=sys.stderr)
    from bench.backlog import run_memory

    runs = []
    for size in plan.backlog:
        repeats = plan.backlog_runs if size == max(plan.backlog) else 1
        print(f"   {size} messages, {repeats} run(s)", file=sys.stderr, flush=True)
        profile = args.profile / f"intake-{size}.html" if args.profile else None
        if profile:
            profile.parent.mkdir(parents=True, exist_ok=True)
        runs.append(run_backlog(mailboxes, sink, corpus, size, workdir, repeats=repeats,
                                profile=profile))
    memory = run_memory(mailboxes, sink, corpus, plan.memory, workdir,
                        {r["messages"]: r for r in runs})
    return {
        "corpus": {"files": len(corpus.files), "bytes": corpus.total_bytes}
        if corpus
        else "generated reports",
        "runs": runs,
        "memory": memory,
        "memory_growth": memory["growth"],
    }


def _scale(plan: Plan, workdir: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    from bench.scale import run_scale
    from bench.servers import Postgres, Unavailable

    out: dict[str, Any] = {}
    print("   sqlite", file=sys.stderr, flush=True)
    out["sqlite"] = run_scale(f"sqlite:///{workdir / 'scale.db'}", plan.cases)
    try:
        postgres = Postgres()
    except Unavailable as exc:
        out["postgresql"] = {"skipped": str(exc)}
        return out
    stack.callback(postgres.stop)
    print("   postgresql", file=sys.stderr, flush=True)
    out["postgresql"] = run_scale(postgres.new(), plan.cases)
    out["postgresql_version"] = postgres.version
    return out


# ---------------------------------------------------------------------------------------------
# The machine


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(_mem_total() / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": sqlite3.sqlite_version,
        "load_before": _load(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "mailbot"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


# ---------------------------------------------------------------------------------------------
# The table


def table(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for part in PARTS:
        data = results.get(part)
        if data is None:
            continue
        if "skipped" in data:
            rows.append(_row(part, "skipped", data["skipped"], "", None))
            continue
        rows.extend(ROWS[part](data))
    return rows


def _latency_rows(data: dict[str, Any]) -> list[Row]:
    median, p95 = data["median_seconds"], data["p95_seconds"]
    ok = median is not None and median < LATENCY_MEDIAN and data["missing"] == 0
    p95_ok = p95 is not None and p95 < LATENCY_P95
    return [
        _row(
            "latency",
            f"{data['reports']} reports at {data['per_second']:g}/s: median",
            _s(median),
            f"< {LATENCY_MEDIAN:g} s",
            ok,
        ),
        _row(
            "latency",
            "p95; max; missing",
            f"{_s(p95)}; {_s(data['max_seconds'])}; {data['missing']}",
            f"p95 < {LATENCY_P95:g} s",
            p95_ok,
        ),
        *_sent_ack_rows(data),
    ]


def _sent_ack_rows(data: dict[str, Any]) -> list[Row]:
    if not data.get("sent_replies"):
        return []
    ack = data["sent_ack"]
    return [
        _row(
            "latency",
            f"{data['sent_replies']} replies filed in Sent: median to acknowledged",
            _s(ack["median_seconds"]),
            f"< {SENT_ACK_SECONDS:g} s",
            ack["median_seconds"] is not None and ack["max_seconds"] < SENT_ACK_SECONDS
            and data["sent_ack_missing"] == 0,
        ),
        _row(
            "latency",
            "Sent ack p95; max; missing",
            f"{_s(ack['p95_seconds'])}; {_s(ack['max_seconds'])}; {data['sent_ack_missing']}",
            "",
            None,
        ),
    ]


def _scale_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for db in ("sqlite", "postgresql"):
        d = data.get(db)
        if d is None:
            continue
        if "skipped" in d:
            rows.append(_row("scale", db, "skipped", d["skipped"], None))
            continue
        n = d["cases"]
        rows.append(
            _row(
                "scale",
                f"{db}, {n} cases: deadline watch",
                _ms(d["watch_seconds"]),
                f"< {SCALE_SECONDS * 1000:.0f} ms",
                d["watch_seconds"] < SCALE_SECONDS,
            )
        )
        rows.append(
            _row(
                "scale",
                f"{db}: first watch, queues {d['watch_first_queued']}",
                _ms(d["watch_first_seconds"]),
                "",
                None,
            )
        )
        rows.append(
            _row(
                "scale",
                f"{db}: cases list --at-risk ({d['at_risk_listed']} rows)",
                _ms(d["at_risk_list_seconds"]),
                f"< {SCALE_SECONDS * 1000:.0f} ms",
                d["at_risk_list_seconds"] < SCALE_SECONDS,
            )
        )
    return rows


def _size_rows(data: dict[str, Any]) -> list[Row]:
    mine = data["mailbot"]
    return [
        _row(
            "size",
            f"{_mb(data['bytes'])} message: peak RSS over size",
            f"{data['peak_over_size']:.1f}x ({_mb(mine['rss_peak_delta'])}; floor "
            f"{data['floor_peak_over_size']:.1f}x)",
            f"< {SIZE_FACTOR:g}x",
            data["peak_over_size"] < SIZE_FACTOR,
        ),
    ]


def _startup_rows(data: dict[str, Any]) -> list[Row]:
    return [
        _row(
            "startup",
            f"mailbot --help, median of {data['runs']}",
            f"{_ms(data['median_seconds'])} (python alone "
            f"{_ms(data['python_alone_median_seconds'])})",
            f"< {STARTUP_SECONDS * 1000:.0f} ms",
            data["median_seconds"] < STARTUP_SECONDS,
        ),
    ]


def _report_rows(data: dict[str, Any]) -> list[Row]:
    full, quarter = data["full"], data["quarter"]
    return [
        _row("report", f"mailbot report, {full['cases']} cases: html (process, median of "
             f"{data['runs']}), wall (CPU)",
             f"{_s(full['html_seconds'])} ({_s(full['html_cpu_seconds'])})",
             f"< {REPORT_SECONDS:g} s", full["html_seconds"] < REPORT_SECONDS),
        _row("report", "json, wall (CPU); reading and adding up alone",
             f"{_s(full['json_seconds'])} ({_s(full['json_cpu_seconds'])}); "
             f"{_s(full['compute_seconds'])}", "", None),
        _row("report", f"peak RSS at {quarter['cases']} and {full['cases']} cases",
             f"{_mb(quarter['html_peak_rss'])}; {_mb(full['html_peak_rss'])} "
             f"({data['memory_growth']:.2f}x)", f"<= {MEMORY_GROWTH}x (flat)",
             data["memory_growth"] <= MEMORY_GROWTH),
    ]


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "backlog": backlog_rows,
    "latency": _latency_rows,
    "scale": _scale_rows,
    "size": _size_rows,
    "startup": _startup_rows,
    "report": _report_rows,
}
