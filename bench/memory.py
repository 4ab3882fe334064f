"""Resident memory of this process, from /proc (Linux): what the operator's machine pays."""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _field(name: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in bytes; 0 where /proc is missing."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss() -> int:
    return _field("VmRSS")


def peak_rss() -> int:
    """The high-water mark of RSS since the process started or since ``reset_peak()``."""
    return _field("VmHWM")


def reset_peak() -> bool:
    """Start the high-water mark afresh (writing 5 to clear_refs); False where not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True
