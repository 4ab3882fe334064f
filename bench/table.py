"""The benchmark's printed table: one row per measure, and how figures are written in it."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def row(part: str, what: str, value: str, target: str, ok: bool | None) -> Row:
    return {
        "part": part,
        "measure": what,
        "value": value,
        "target": target,
        "verdict": "-" if ok is None else ("met" if ok else "MISSED"),
    }


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def print_table(rows: list[Row]) -> None:
    headers = ("part", "measure", "value", "target", "verdict")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) if rows else len(h) for h in headers]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))
