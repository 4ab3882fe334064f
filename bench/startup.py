"""``mailbot --help`` wall time, measured the way hyperfine does: warm-ups, then the median."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from bench.corpus import REPO

WARMUPS = 2


def run_startup(runs: int) -> dict[str, Any]:
    mailbot = _times([sys.executable, "-m", "mailbot", "--help"], runs)
    bare = _times([sys.executable, "-c", "pass"], runs)
    return {
        "command": "python -m mailbot --help",
        "runs": runs,
        "median_seconds": statistics.median(mailbot),
        "min_seconds": min(mailbot),
        "max_seconds": max(mailbot),
        "python_alone_median_seconds": statistics.median(bare),
    }


def _times(command: list[str], runs: int) -> list[float]:
    out = []
    for n in range(WARMUPS + runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, check=True)
        if n >= WARMUPS:
            out.append(time.perf_counter() - started)
    return out
