"""What CI checks: the tests are type-checked as strictly as the code."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_checks_the_tests_strictly() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert {"mailbot", "tests"} <= set(config["files"])


def test_ci_runs_mypy_over_its_configured_files() -> None:
    runs = [shlex.split(line, comments=True) for line in (ROOT / ".ci" / "run").read_text()
            .splitlines()]
    mypy = [words for words in runs if words and words[0] == "mypy"]
    # Bare "mypy" reads the files from pyproject.toml; naming paths would narrow it.
    assert mypy == [["mypy"]]
