"""The benchmark suite in its quick mode, so that it cannot rot: it runs every part against the
real servers and writes its table and JSON. Speed is not asserted here; `python -m bench` measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.split import STEPS
from tests.servers import server_missing
from tests.servers.dovecot import doveadm_binary, dovecot_binary

REPO = Path(__file__).resolve().parents[2]
# About a minute on two cores: Dovecot, PostgreSQL, the daemon and a score of worker processes
# start and stop.
pytestmark = pytest.mark.slow
PARTS = ("backlog", "latency", "scale", "size", "startup", "report")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, object]]:
    if dovecot_binary() is None or doveadm_binary() is None:
        server_missing("the benchmark needs Dovecot (apt install dovecot-imapd dovecot-lmtpd)")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def test_quick_benchmark_measures_every_part(quick_run: tuple[str, dict[str, object]]) -> None:
    _, results = quick_run
    assert results["quick"] is True
    for part in PARTS:
        assert part in results, part
    backlog = results["backlog"]
    assert isinstance(backlog, dict)
    for run in backlog["runs"]:
        assert run["waiting"] == run["messages"]
        assert run["floor"]["messages"] == run["messages"]
        assert run["mailbot"]["cases"] > 0
        assert run["mailbot"]["sent"] == run["sink_received"]
    largest = backlog["runs"][-1]
    assert len(largest["ratios"]) == 3 and len(largest["mailbot_runs"]) == 3
    assert largest["ratio_min"] <= largest["ratio_median"] <= largest["ratio_max"]
    split = largest["split"]
    assert split["missing"] == []  # every step's hook found its target
    for clock in ("wall_ms_per_message", "cpu_ms_per_message"):
        assert set(split[clock]) == {*STEPS, "rest"}
    # Every step of a message's trip took some time in every run.
    for mine in largest["mailbot_runs"]:
        assert all(mine["split"]["calls"][step] > 0 for step in STEPS), mine["split"]["calls"]
    memory = backlog["memory"]
    assert memory["sizes"] == [10, 40] and all(memory["rss_peak_delta"].values())
    latency = results["latency"]
    assert isinstance(latency, dict)
    assert latency["missing"] == 0 and latency["median_seconds"] is not None
    assert latency["sent_replies"] == 2 and latency["sent_ack_missing"] == 0
    assert latency["sent_ack"]["median_seconds"] is not None
    scale = results["scale"]
    assert isinstance(scale, dict)
    assert scale["sqlite"]["cases"] == 500
    assert isinstance(scale["sqlite"]["at_risk_listed"], int)
    assert scale["sqlite"]["watch_seconds"] > 0
    report = results["report"]
    assert isinstance(report, dict)
    assert report["full"]["cases"] == report["full"]["in_period"] == 400
    assert report["full"]["html_bytes"] > 10_000 and report["full"]["html_peak_rss"] > 0


def test_quick_benchmark_prints_its_table_and_records_the_machine(
    quick_run: tuple[str, dict[str, object]],
) -> None:
    stdout, results = quick_run
    assert stdout.splitlines()[0].split() == ["part", "measure", "value", "target", "verdict"]
    for part in PARTS:
        assert any(line.startswith(part) for line in stdout.splitlines()), part
    lines = stdout.splitlines()
    [ratio] = [line for line in lines if "40 msgs: mailbot / floor" in line]
    assert "min / median / max over 3 runs" in ratio
    for clock in ("wall", "CPU"):
        [split] = [line for line in lines if f"40 msgs: ms per message, {clock}" in line]
        for step in (*STEPS, "rest", "total"):
            assert f"{step} " in split, (step, split)
    assert any("peak RSS (mailbot) at 10 / 40 messages" in line for line in lines)
    machine = results["machine"]
    assert isinstance(machine, dict)
    assert machine["cores"] and machine["python"] and machine["cpu"]
    assert len(results["table"]) >= len(PARTS)  # type: ignore[arg-type]
