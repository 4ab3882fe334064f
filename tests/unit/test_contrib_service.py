"""contrib/mailbot.service: a systemd unit that runs `mailbot run` confined (hardening on)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "mailbot.service"


def settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_runs_the_daemon_unprivileged_with_its_config() -> None:
    unit = settings()
    assert unit["ExecStart"][0].endswith("/mailbot run")
    assert unit["User"] == ["mailbot"]
    assert unit["Environment"] == ["MAILBOT_CONFIG=/etc/mailbot/mailbot.toml"]
    assert unit["KillSignal"] == ["SIGTERM"]  # mailbot finishes the message in hand
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        assert unit[key] == [value], key


def test_systemd_accepts_the_unit_and_rates_its_exposure_low(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify also checks that ExecStart exists: point it at this interpreter.
    unit = tmp_path / "mailbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/mailbot/bin/mailbot run",
                                             f"{sys.executable} -m mailbot run"))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0, verified.stderr
    # Exposure on systemd's 0-10 scale (the threshold is in tenths): 2.0 or better.
    rated = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
                           capture_output=True, text=True, timeout=60)
    assert rated.returncode == 0, rated.stdout[-2000:]
