"""Key rotation: everything re-sealed under the new key, resumable after kill -9, nothing lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from mailbot.cli import main
from mailbot.crypto.keys import read_key_file
from mailbot.crypto.reseal import SEALED_TABLES
from mailbot.sealing import key_id_of
from mailbot.store import Database
from tests import factories
from tests.integration.test_cli import write_config
from tests.integration.test_encryption_at_rest import report

ROOT = Path(__file__).resolve().parents[2]
REPORTS = 30


def stored_key_ids(url: str) -> dict[str | None, int]:
    """How many stored values each key id sealed (None: in clear or not a sealed value)."""
    counts: dict[str | None, int] = {}
    db = Database(url)
    with db.engine.connect() as conn:
        for spec in SEALED_TABLES:
            for row in conn.execute(select(*(spec.table.c[c] for c in spec.columns))):
                for value in (v for v in row if v is not None):  # NULL: no credit
                    kid = key_id_of(bytes(value))
                    counts[kid] = counts.get(kid, 0) + 1
    db.dispose()
    return counts


# Sealed since 0007, named here and not through SEALED_TABLES: a rotation that forgot them fails.
LATER_COLUMNS = (("cases", "credit"), ("events", "detail"), ("events", "source"),
                 ("inbound_failures", "last_error"))


def later_columns_key_ids(url: str) -> dict[str, set[str | None]]:
    """The key ids of the credit names, event details and failure texts, per column."""
    db = Database(url)
    found: dict[str, set[str | None]] = {}
    with db.engine.connect() as conn:
        for table, column in LATER_COLUMNS:
            rows = conn.execute(text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))
            found[f"{table}.{column}"] = {key_id_of(bytes(v)) for (v,) in rows}
    db.dispose()
    return found


def add_credit_and_failure(config: Path) -> None:
    """A credit name on the first case (and its event), and a failure record."""
    from datetime import UTC, datetime

    from mailbot.app import App
    from mailbot.cases.models import InboundFailure
    from mailbot.config import load_settings

    assert main(["--config", str(config), "cases", "credit", "SEC-2026-0001",
                 "Rita Reporter, Example Labs"]) == 0
    app = App(load_settings(config))
    app.prepare_storage()
    with app.db.session() as session:
        session.add(InboundFailure(folder="INBOX", uidvalidity=1, uid=7, attempts=1,
                                   last_error="ValueError: a quoted header",
                                   updated_at=datetime.now(UTC)))
    app.close()


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config whose database holds REPORTS cases under key A (one with a credit name, and a
    failure record), and a new key B."""
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    old = factories.storage_key(tmp_path, "a.key")
    config = write_config(tmp_path, extra=f'[storage]\nkey_file = "{old}"\n')
    files = []
    for n in range(REPORTS):
        path = tmp_path / f"r{n}.eml"
        path.write_bytes(report(n))
        files.append(str(path))
    assert main(["--config", str(config), "ingest", *files]) == 0
    add_credit_and_failure(config)
    return config, factories.storage_key(tmp_path, "b.key")


def rotate_command(config: Path, new: Path) -> list[str]:
    return [sys.executable, "-m", "mailbot", "--config", str(config), "keys", "rotate",
            "--new-key-file", str(new), "--batch-size", "3"]


def kill_during_rotation(config: Path, new: Path, seed: int) -> None:
    """Start a rotation and SIGKILL it after a random number of its batches."""
    batches = random.Random(seed).randint(1, 25)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(rotate_command(config, new), stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    seen = 0
    while seen < batches:
        chunk = proc.stderr.read(1)
        if not chunk:
            break  # it finished first
        seen += chunk == b"\r"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rotation_killed_at_random_points_resumes_and_loses_nothing(
    filled: tuple[Path, Path], tmp_path: Path, seed: int, capsys: pytest.CaptureFixture[str],
) -> None:
    config, new = filled
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    before = stored_key_ids(url)
    total = sum(before.values())
    for attempt in range(3):
        kill_during_rotation(config, new, seed * 10 + attempt)
    mixed = stored_key_ids(url)
    assert sum(mixed.values()) == total
    assert None not in mixed  # never a value in clear, at any point

    assert main(["--config", str(config), "keys", "rotate", "--new-key-file", str(new)]) == 0
    new_id = read_key_file(new).id
    assert stored_key_ids(url) == {new_id: total}
    assert all(kids == {new_id} for kids in later_columns_key_ids(url).values())

    # Only the new key now: every case and message opens, with its content.
    config.write_text(config.read_text().replace(str(tmp_path / "a.key"), str(new)))
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == REPORTS
    assert all("Zqxsubjectmark7" in r["subject"] for r in rows)
    assert main(["--config", str(config), "cases", "show", rows[-1]["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "Zqxbodymark7" in shown["messages"][0]["text"]
    # The same reports again are recognised (dedupe keys follow the key): no new case.
    files = [str(tmp_path / f"r{n}.eml") for n in range(REPORTS)]
    assert main(["--config", str(config), "ingest", *files]) == 0
    assert f"{REPORTS} duplicate" in capsys.readouterr().out


def test_after_rotation_the_old_key_alone_is_refused(
    filled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config, new = filled
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    old_id = read_key_file(tmp_path / "a.key").id
    assert all(kids == {old_id} for kids in later_columns_key_ids(url).values())
    assert main(["--config", str(config), "keys", "rotate", "--new-key-file", str(new)]) == 0
    assert later_columns_key_ids(url) == {f"{t}.{c}": {read_key_file(new).id}
                                          for t, c in LATER_COLUMNS}
    # The new key's first start finishes the handover; from then on the old key opens nothing.
    with_new = config.read_text().replace(str(tmp_path / "a.key"), str(new))
    config.write_text(with_new)
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "show", "SEC-2026-0001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["credit"] == "Rita Reporter, Example Labs"
    [credit] = [e for e in shown["events"] if e["action"] == "credit"]
    assert credit["detail"]["name"] == "Rita Reporter, Example Labs"
    assert main(["--config", str(config), "cases", "list"]) == 0
    config.write_text(with_new.replace(str(new), str(tmp_path / "a.key")))
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "list"]) == 2
    err = capsys.readouterr().err
    assert read_key_file(new).id in err and len(err.strip().splitlines()) == 1


def test_a_daemon_on_the_old_key_keeps_working_through_a_rotation(
    filled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The process still configured with the old key learns the new one from the database."""
    from mailbot.app import App
    from mailbot.cases.models import Case
    from mailbot.config import load_settings
    from mailbot.crypto.rotation import rotate_storage
    from mailbot.ingest import ingest, read_messages

    config, new = filled
    settings = load_settings(config)
    daemon = App(settings)
    daemon.prepare_storage()
    rotate_storage(settings, read_key_file(new))
    with daemon.db.session() as session:  # re-sealed under the new key: still opens
        subjects = [c.subject for c in session.scalars(select(Case))]
    assert len(subjects) == REPORTS and all("Zqxsubjectmark7" in s for s in subjects)
    extra = tmp_path / "extra.eml"
    extra.write_bytes(report(99))
    from mailbot.crypto.handover import learn_handover

    learn_handover(daemon.db)  # what the daemon does at the start of each pass
    assert ingest(daemon.db, daemon.intake, read_messages([extra]), lambda: None) == {
        "opened": 1}
    daemon.close()
    counts = stored_key_ids(f"sqlite:///{tmp_path / 'cli.db'}")
    assert list(counts) == [read_key_file(new).id]  # what it wrote is under the new key
