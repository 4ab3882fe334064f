"""The test servers are found however the suite is started.

The README's test command, ``.venv/bin/python -m pytest``, works from a venv that was never
activated: the console scripts installed with the test extras (pymap) sit next to the interpreter,
not on PATH.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.servers.dovecot import pymap_binary


def test_pymap_is_found_next_to_the_interpreter_when_its_venv_is_not_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pymap")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert pymap_binary() == str(Path(sys.executable).parent / "pymap")
