"""``mailbot report`` over a year of a very busy programme: every case in the report's period.

The cases have the shapes of the scale part's history (bench/scale.py: acknowledged, assessed,
resolved and closed at plausible times, the recent ones still open), but all of them fall inside
the last twelve months, so the report reads and adds up every one. Rows go in with bulk inserts.

Measured:

- ``mailbot report`` as an operator runs it: a new process, HTML with its charts to a file (wall
  and CPU time, the median of a few runs, and the process's peak RSS; on a shared machine the
  CPU time is the steadier figure);
- the same for ``--format json``;
- in this process: reading and adding up alone (``build_figures``), the median of a few runs;
- flat memory: the peak RSS of the HTML run at a quarter of the cases and at all of them.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.corpus import REPO
from bench.scale import _case, bench_now
from bench.settings import Imap, bench_settings, bench_toml
from mailbot.app import App
from mailbot.cases.models import Case
from mailbot.report.service import build_figures, last_months
from mailbot.sealing import identity
from mailbot.store import migrate

RUNS = 3
CHUNK = 5_000


def run_report(workdir: Path, cases: int, *, runs: int = RUNS, seed: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": cases, "runs": runs}
    quarter = max(1, cases // 4)
    for label, count in (("quarter", quarter), ("full", cases)):
        db = workdir / f"report-{count}.db"
        db.unlink(missing_ok=True)
        url = f"sqlite:///{db}"
        fill = _fill(url, count, seed)
        config = workdir / f"report-{count}.toml"
        config.write_text(bench_toml(Imap(1, "bench@example.test", ""), 1, url))
        html = [_run_cli(config, workdir / "report.html", "html") for _ in range(runs)]
        result: dict[str, Any] = {
            "cases": count,
            "in_period": fill["in_period"],
            "html_seconds": statistics.median(s for s, _, _ in html),
            "html_cpu_seconds": statistics.median(c for _, _, c in html),
            "html_peak_rss": max(r for _, r, _ in html),
            "html_bytes": (workdir / "report.html").stat().st_size,
        }
        if label == "full":
            as_json = [_run_cli(config, workdir / "report.json", "json") for _ in range(runs)]
            result["json_seconds"] = statistics.median(s for s, _, _ in as_json)
            result["json_cpu_seconds"] = statistics.median(c for _, _, c in as_json)
            result["compute_seconds"] = _compute(url, runs)
        out[label] = result
    out["memory_growth"] = out["full"]["html_peak_rss"] / max(1, out["quarter"]["html_peak_rss"])
    return out


def _fill(url: str, count: int, seed: int) -> dict[str, int]:
    settings = bench_settings(Imap(1, "bench@example.test", ""), 1, url)
    app = App(settings)
    rng = random.Random(seed)
    try:
        migrate(app.db)
        app.prepare_storage()
        calendar = app.calendar
        now = bench_now(calendar)
        period = last_months(calendar.local_date(now))
        start = calendar.start_of_day(period.since)
        span = now - timedelta(minutes=5) - start
        rows = []
        for i in range(count):
            received = start + span * (i + rng.random()) / count
            rows.append(_case(calendar, f"SEC-{received.year}-{i:06d}", received, now, rng))
        for row in rows:  # stored as intake stores it: sealed, bound to its row
            row["subject"] = app.db.sealer.seal(row["subject"].encode(),
                                                identity("cases", "subject", row["id"]))
        with app.db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
            for chunk in _chunks(rows):
                conn.execute(insert(Case), chunk)
            conn.exec_driver_sql("ANALYZE")
        return {"in_period": count}
    finally:
        app.close()


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for first in range(0, len(rows), CHUNK):
        yield rows[first : first + CHUNK]


# The child reports its own peak RSS (VmHWM, per address space, so fresh after exec). The rusage
# maximum would not do: Linux carries it over exec from the forking parent, this big process.
_CHILD = """
import atexit, sys
from bench.memory import peak_rss
atexit.register(lambda: print(f"peak-rss {peak_rss()}", file=sys.stderr))
from mailbot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_cli(config: Path, out: Path, fmt: str) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds of one ``mailbot report`` process."""
    command = [sys.executable, "-c", _CHILD, "--config", str(config), "report",
               "--format", fmt, "--out", str(out)]
    env = {**os.environ, "MAILBOT_BENCH_IMAP_PASSWORD": "unused", "MAILBOT_BENCH_TOKEN_KEY": "k"}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                             cwd=REPO)
    # wait4 gives this child's own CPU time (RUSAGE_CHILDREN would add up every child so far).
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"mailbot report failed: {stderr[-2000:]}")
    peak = next(int(line.split()[1]) for line in stderr.splitlines()
                if line.startswith("peak-rss "))
    return seconds, peak, usage.ru_utime + usage.ru_stime


def _compute(url: str, runs: int) -> float:
    settings = bench_settings(Imap(1, "bench@example.test", ""), 1, url)
    app = App(settings)
    try:
        now = datetime.now(UTC)
        period = last_months(app.calendar.local_date(now))
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            build_figures(app.db, app.calendar, settings.policy, period, now)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        app.close()
