"""``python -m bench.web [--messages 2000] [--rounds 2]``: the case view beside a busy intake.

Each round fills two fresh mailboxes with the same backlog and runs mailbot's intake over each
(the daemon's mailbox pass, in a worker process, as ``python -m bench`` does): once alone, once
while ``mailbot web`` serves the same SQLite database from a process of its own and a logged-in
client asks for the board every ``--interval`` seconds (a few people with the board open;
``--interval 0`` asks back to back, the worst case). It reports the board's latencies during
intake, the board on the finished database, and how much longer intake took beside the case view.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.backlog import worker
from bench.corpus import DEFAULT_CORPUS, REPO, Corpus, report
from bench.servers import Mailboxes, Sink
from bench.settings import TOKEN_KEY, Imap, bench_settings, bench_toml
from mailbot.web.access import hash_password
from tests.servers import free_port

USER, PASSWORD = "bench", "bench password 0123456789"


class Board:
    """A logged-in client asking for the board until told to stop."""

    def __init__(self, url: str, interval: float) -> None:
        self.interval = interval
        self.client = httpx.Client(base_url=url, timeout=60)
        form = self.client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, form
        done = self.client.post("/login", data={"name": USER, "password": PASSWORD,
                                                "csrf": csrf[1]})
        assert done.status_code == 303, done.text
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> float:
        started = time.perf_counter()
        page = self.client.get("/")
        elapsed = time.perf_counter() - started
        assert page.status_code == 200, page.status_code
        return elapsed

    def _run(self) -> None:
        while not self._stop.is_set():
            self.latencies.append(self.once())
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _prepare(imap: Imap, smtp_port: int, db_url: str) -> None:
    """The schema and the storage key, as the daemon's first start makes them: the case view
    only ever opens a database that has both."""
    from mailbot.app import App
    from mailbot.store import migrate

    app = App(bench_settings(imap, smtp_port, db_url))
    migrate(app.db)
    app.prepare_storage()
    app.close()


def start_web(config: Path, imap: Imap, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "MAILBOT_BENCH_IMAP_PASSWORD": imap.password,
           "MAILBOT_BENCH_TOKEN_KEY": TOKEN_KEY}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config), "web",
                                 "--listen", f"127.0.0.1:{port}"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/login", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(log.read_text(errors="replace")[-2000:])


def one_round(n: int, mailboxes: Mailboxes, sink: Sink, corpus: Corpus | None, messages: int,
              workdir: Path, interval: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for with_web in (False, True) if n % 2 == 0 else (True, False):
        imap = mailboxes.new()
        source = (corpus.messages(messages, f"w{n}{with_web}") if corpus
                  else (report(i, f"w{n}{with_web}") for i in range(messages)))
        mailboxes.load(imap, source)
        db = workdir / f"web-{n}-{with_web}.db"
        spec = {"job": "intake", "imap": imap.as_dict(), "batch_size": 100,
                "smtp_port": sink.port, "db_url": f"sqlite:///{db}"}
        log = workdir / f"web-{n}.log"
        sink.clear()
        if not with_web:
            result = worker(spec, log)
            out["alone"], out["alone_cpu"] = result["seconds"], result["cpu_seconds"]
            continue
        config = workdir / f"web-{n}.toml"
        config.write_text(bench_toml(imap, sink.port, f"sqlite:///{db}") + f"""
[web]
users = [{{name = "{USER}", password_hash = "{hash_password(PASSWORD)}"}}]
""")
        _prepare(imap, sink.port, f"sqlite:///{db}")
        proc, url = start_web(config, imap, log)
        try:
            board = Board(url, interval)
            board.start()
            result = worker(spec, log)
            board.stop()
            out["with_web"], out["with_web_cpu"] = result["seconds"], result["cpu_seconds"]
            out["web_cpu"] = _cpu_seconds(proc.pid)
            out["cases"] = result["cases"]
            out["board_during_intake"] = board.latencies
            out["board_after"] = [board.once() for _ in range(20)]
        finally:
            proc.terminate()
            proc.wait(10)
    return out


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    during = [x for r in rounds for x in r["board_during_intake"]]
    after = [x for r in rounds for x in r["board_after"]]
    alone = [r["alone"] for r in rounds]
    busy = [r["with_web"] for r in rounds]

    def ms(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 1) if len(
            values) > 1 else round(values[0] * 1000, 1)

    return {
        "board_requests_during_intake": len(during),
        "board_median_ms_during_intake": round(statistics.median(during) * 1000, 1),
        "board_p90_ms_during_intake": ms(during, 90),
        "board_max_ms_during_intake": round(max(during) * 1000, 1),
        "board_median_ms_after": round(statistics.median(after) * 1000, 1),
        "intake_seconds_alone": [round(x, 2) for x in alone],
        "intake_seconds_with_web": [round(x, 2) for x in busy],
        # Each round runs both intakes back to back, so a round's ratio shares its moment's load.
        "intake_slowdown_percent_per_round": [round((b / a - 1) * 100, 1)
                                              for a, b in zip(alone, busy, strict=True)],
        "intake_slowdown_percent": round(
            (statistics.median(b / a for a, b in zip(alone, busy, strict=True)) - 1) * 100, 1),
        # CPU time is the steadier figure on a shared machine: intake's own work, whatever the
        # neighbours' load does to its wall-clock time.
        "intake_cpu_seconds_alone": [round(r["alone_cpu"], 2) for r in rounds],
        "intake_cpu_seconds_with_web": [round(r["with_web_cpu"], 2) for r in rounds],
        "web_process_cpu_seconds": [round(r["web_cpu"], 2) for r in rounds],
        "cases": rounds[-1]["cases"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two board requests (0: back to back)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    corpus = Corpus.load(args.corpus) if args.corpus.is_dir() else None
    mailboxes = Mailboxes()
    sink = Sink().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
            rounds = [one_round(n, mailboxes, sink, corpus, args.messages, Path(tmp),
                                args.interval)
                      for n in range(args.rounds)]
    finally:
        sink.stop()
        mailboxes.stop()
    print(json.dumps({"messages": args.messages, "corpus": bool(corpus), "rounds": args.rounds,
                      "interval": args.interval,
                      "load_average_before_after": [round(load_before[0], 1),
                                                    round(os.getloadavg()[0], 1)],
                      **summarise(rounds)}, indent=2))


if __name__ == "__main__":
    main()
