"""``python -m bench.web`` on a tiny backlog, so that the case view's benchmark cannot rot. Speed
is not asserted here; the benchmark measures it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import server_missing
from tests.servers.dovecot import doveadm_binary, dovecot_binary

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_web_benchmark_runs_intake_alone_and_beside_a_busy_board() -> None:
    if dovecot_binary() is None or doveadm_binary() is None:
        server_missing("the benchmark needs Dovecot (apt install dovecot-imapd dovecot-lmtpd)")
    done = subprocess.run(
        [sys.executable, "-m", "bench.web", "--messages", "30", "--rounds", "1",
         "--interval", "0.2"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results["cases"] == 30
    assert results["board_requests_during_intake"] >= 1
    assert results["board_median_ms_after"] > 0
    assert len(results["intake_seconds_alone"]) == len(results["intake_seconds_with_web"]) == 1
    assert results["web_process_cpu_seconds"][0] > 0
