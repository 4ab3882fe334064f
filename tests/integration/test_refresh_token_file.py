"""The refresh-token file survives a kill -9 mid-rotation: the old or the new token, never torn."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbot.oauth2.files import read_secret, write_secret

SIZE = 2_000_000  # big enough that a kill often lands inside a write
WRITER = """
import sys
from mailbot.oauth2.files import write_secret
path, size = sys.argv[1], int(sys.argv[2])
values = ("A" * size, "B" * size)
write_secret(path, values[0])
print("ready", flush=True)
n = 1
while True:
    write_secret(path, values[n % 2])
    n += 1
"""


@pytest.mark.slow
def test_kill_9_during_rotation_leaves_the_old_or_the_new_token(tmp_path: Path) -> None:
    path = tmp_path / "refresh-token"
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(SIZE)],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(random.uniform(0, 0.05))  # somewhere in the loop of rewrites, not a check
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        content = path.read_text()
        assert content in ("A" * SIZE + "\n", "B" * SIZE + "\n"), f"torn: {len(content)} chars"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The next write clears what a killed one left beside the file.
    write_secret(path, "rt-final")
    assert [p.name for p in tmp_path.iterdir()] == ["refresh-token"]
    assert read_secret(path) == "rt-final"


def test_the_file_is_private_from_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "refresh-token"
    old_umask = os.umask(0)  # even a careless umask must not widen it
    try:
        write_secret(path, "rt-1")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(path) == "rt-1"
