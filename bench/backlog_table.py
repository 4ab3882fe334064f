"""The backlog part's rows of the table: the floor and the cycle, the ratio's spread over the
runs, where each message's time goes, and the peak memory at two backlog sizes."""

from __future__ import annotations

from typing import Any

from bench.split import STEPS
from bench.table import Row, mb, row

# Targets (docs/design.md, "Performance targets").
BACKLOG_RATIO = 1.5
MEMORY_GROWTH = 1.25  # peak at the largest backlog over the peak at the smallest


def backlog_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for run in data["runs"]:
        rows.extend(_run_rows(run))
    memory = data.get("memory")
    if memory:
        peaks = memory["rss_peak_delta"]
        rows.append(
            row(
                "backlog",
                "peak RSS (mailbot) at " + " / ".join(f"{int(n):,}" for n in memory["sizes"])
                + " messages",
                " / ".join(mb(peaks[str(n)]) for n in memory["sizes"])
                + f" ({memory['growth']:.2f}x)",
                f"<= {MEMORY_GROWTH}x (flat)",
                memory["growth"] <= MEMORY_GROWTH,
            )
        )
    else:  # results written before the memory sizes were their own
        growth = data["memory_growth"]
        rows.append(
            row(
                "backlog",
                "peak RSS, largest / smallest backlog",
                f"{growth:.2f}x",
                f"<= {MEMORY_GROWTH}x (flat)",
                growth <= MEMORY_GROWTH,
            )
        )
    return rows


def _run_rows(run: dict[str, Any]) -> list[Row]:
    n, floor, mine = run["messages"], run["floor"], run["mailbot"]
    rows = [
        row(
            "backlog",
            f"{n} msgs: floor (fetch + mail-parser)",
            f"{floor['seconds']:.1f} s ({n / floor['seconds']:.0f} msg/s)",
            "",
            None,
        ),
        row(
            "backlog",
            f"{n} msgs: mailbot read + drain",
            f"{mine['seconds']:.1f} s = {mine['read_seconds']:.1f} + "
            f"{mine['drain_seconds']:.1f} s ({mine['cases']} cases, {mine['sent']} receipts)",
            "",
            None,
        ),
    ]
    ratios = run.get("ratios", [run["ratio"]])
    spread = (
        f"; min / median / max over {len(ratios)} runs: {run['ratio_min']:.2f} / "
        f"{run['ratio_median']:.2f} / {run['ratio_max']:.2f}x"
        if len(ratios) > 1
        else ""
    )
    rows.append(
        row(
            "backlog",
            f"{n} msgs: mailbot / floor",
            f"{run['ratio']:.2f}x (read alone {run['read_ratio']:.2f}x, "
            f"CPU {run['cpu_ratio']:.2f}x){spread}",
            f"<= {BACKLOG_RATIO}x",
            run["ratio"] <= BACKLOG_RATIO,
        )
    )
    rows.extend(_split_rows(n, run.get("split")))
    if "mailbot_unencrypted" in run:
        clear = run["mailbot_unencrypted"]
        rows.append(
            row(
                "backlog",
                f"{n} msgs: encryption at rest on / off",
                f"{mine['seconds']:.1f} s / {clear['seconds']:.1f} s "
                f"(sealing {run['sealing_cost']:+.1%} of the cycle)",
                "well under 5%",
                None,
            )
        )
    parse_processes = mine.get("parse_processes", 0)
    rows.append(
        row(
            "backlog",
            f"{n} msgs: peak RSS (mailbot; floor)",
            f"{mb(mine['rss_peak_delta'])}; {mb(floor['rss_peak_delta'])}"
            + (f" (and a parse process: {mb(mine['rss_parse_process_peak'])} at its peak)"
               if parse_processes else ""),
            "",
            None,
        )
    )
    if parse_processes:
        rows.append(
            row(
                "backlog",
                f"{n} msgs: parse processes",
                f"{parse_processes}: {mine['parse_process_cpu_seconds']:.1f} s CPU of the "
                f"cycle's {mine['cpu_seconds']:.1f} s",
                "",
                None,
            )
        )
    return rows


def _split_rows(n: int, split: dict[str, Any] | None) -> list[Row]:
    """Milliseconds per message by step, wall clock and CPU (median over the runs)."""
    if not split:
        return []
    wall, cpu = split["wall_ms_per_message"], split["cpu_ms_per_message"]
    steps = [*STEPS, "rest"]
    value = ", ".join(f"{step} {wall[step]:.2f}" for step in steps)
    value += f" (total {sum(wall[s] for s in steps):.2f})"
    cpu_value = ", ".join(f"{step} {cpu[step]:.2f}" for step in steps)
    cpu_value += f" (total {sum(cpu[s] for s in steps):.2f})"
    rows = [
        row("backlog", f"{n} msgs: ms per message, wall", value, "", None),
        row("backlog", f"{n} msgs: ms per message, CPU", cpu_value, "", None),
    ]
    if split.get("missing"):
        rows.append(row("backlog", "steps not hooked (read 0)", ", ".join(split["missing"]),
                        "", None))
    return rows
