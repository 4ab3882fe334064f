"""Faults: crashes, lost connections and unavailable servers, against real Dovecot, a real SMTP
sink, SQLite and PostgreSQL. Whatever happens, no message is lost, no case is doubled, a crash
resends at most one receipt, and the log says what happened.

The long seeded runs are marked slow; ``pytest -m slow -s`` prints their figures, and each also
writes them as JSON under the test's tmp_path (``kill-figures.json``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests import daemons
from tests.daemons import DaemonProcess, Progress, Tally
from tests.servers.dovecot import ImapAccount, ImapTestServer
from tests.servers.smtp_sink import SmtpSink

# ---------------------------------------------------------------------------------------------
# SIGKILL during a backlog


@dataclass
class KillRun:
    seed: int
    messages: int
    kills: int
    kills_in_intake: int  # some mail not yet a case
    kills_in_drain: int  # every case opened, some receipt not yet accepted
    cases: int
    duplicate_cases: int
    receipts: int
    duplicate_receipts: int
    seconds: float


def kill_and_restart(
    tmp_path: Path,
    account: ImapAccount,
    sink: SmtpSink,
    *,
    messages: int,
    kills: int,
    seed: int,
    batch_size: int = 10,
) -> KillRun:
    """Deliver a backlog, run ``mailbot run``, SIGKILL it ``kills`` times at seeded random points
    (restarting it after each kill but the last), then ``run --once`` to the end."""
    started = time.monotonic()
    rng = random.Random(seed)
    daemons.deliver_backlog(account, (daemons.report(i) for i in range(messages)))
    database_url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    config = daemons.write_config(
        tmp_path,
        account.mailbox_settings(batch_size=batch_size),
        sink.smtp_settings(),
        database_url,
    )
    progress = Progress(database_url)
    # Progress runs from 0 to 2 * messages: cases opened, then receipts accepted by the sink. A
    # kill point anywhere in it lands in intake (mid-batch) or in the outbox drain (mid-send).
    targets = sorted(rng.sample(range(1, 2 * messages - 1), kills))

    def done() -> int:
        return progress.cases() + len(Tally.of(sink.received).copies)

    phases: list[str] = []
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        for n, target in enumerate(targets, 1):
            daemons.wait_until(
                lambda t=target: done() >= t, 120, f"progress {target}", alive=[daemon]
            )
            time.sleep(rng.uniform(0, 0.2))  # not always right after a commit
            daemon.kill()
            phases.append(_phase(progress, sink, messages))
            if n < len(targets):
                daemon = DaemonProcess(config, tmp_path / "daemon.log")
    finally:
        daemon.kill()
    finished = daemons.run_mailbot(config, "run", "--once")
    assert finished.returncode == 0, finished.stderr[-3000:]

    reporters = progress.reporters()
    progress.dispose()
    tally = Tally.of(sink.received)
    expected = {daemons.reporter(i) for i in range(messages)}
    assert set(reporters) == expected, "a report was lost"
    assert tally.answered() == expected, "a reporter has no receipt"
    assert all(len(ids) == 1 for ids in tally.recipients.values()), "two different receipts"
    return KillRun(
        seed=seed,
        messages=messages,
        kills=kills,
        kills_in_intake=phases.count("intake"),
        kills_in_drain=phases.count("drain"),
        cases=sum(reporters.values()),
        duplicate_cases=sum(reporters.values()) - len(reporters),
        receipts=sum(tally.copies.values()),
        duplicate_receipts=tally.duplicates,
        seconds=round(time.monotonic() - started, 1),
    )


def _phase(progress: Progress, sink: SmtpSink, messages: int) -> str:
    if progress.cases() < messages:
        return "intake"
    return "drain" if len(Tally.of(sink.received).copies) < messages else "done"


def test_sigkill_during_a_backlog_loses_nothing_and_resends_at_most_one_receipt_per_kill(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    run = kill_and_restart(tmp_path, imap_account, smtp_sink, messages=40, kills=2, seed=7)

    assert run.cases == 40
    assert run.duplicate_cases == 0
    assert run.duplicate_receipts <= run.kills


@pytest.mark.slow
def test_sigkill_several_times_during_a_300_message_backlog_loses_and_doubles_nothing(
    tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    run = kill_and_restart(tmp_path, imap_account, smtp_sink, messages=300, kills=5, seed=2)

    print(f"\nSIGKILL over a 300-message backlog: {run}")
    assert run.cases == 300
    assert run.duplicate_cases == 0
    assert run.duplicate_receipts <= run.kills


SEEDED_RUNS = 20


@pytest.mark.slow
def test_sigkill_at_random_points_in_twenty_seeded_runs_never_doubles_a_case(
    tmp_path: Path, dovecot_server: ImapTestServer, smtp_sink: SmtpSink
) -> None:
    started = time.monotonic()
    runs = []
    for seed in range(SEEDED_RUNS):
        directory = tmp_path / f"run-{seed:02d}"
        directory.mkdir()
        smtp_sink.clear()
        kills = random.Random(seed).randint(1, 4)
        run = kill_and_restart(
            directory, dovecot_server.add_user(), smtp_sink, messages=40, kills=kills, seed=seed
        )
        assert run.duplicate_cases == 0, run
        assert run.duplicate_receipts <= run.kills, run
        runs.append(run)

    totals = {
        "runs": len(runs),
        "kills": sum(r.kills for r in runs),
        "kills_in_intake": sum(r.kills_in_intake for r in runs),
        "kills_in_drain": sum(r.kills_in_drain for r in runs),
        "messages": sum(r.messages for r in runs),
        "cases": sum(r.cases for r in runs),
        "duplicate_cases": sum(r.duplicate_cases for r in runs),
        "receipts": sum(r.receipts for r in runs),
        "duplicate_receipts": sum(r.duplicate_receipts for r in runs),
        "runs_with_a_duplicate_receipt": sum(1 for r in runs if r.duplicate_receipts),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    figures = {"totals": totals, "runs": [asdict(r) for r in runs]}
    (tmp_path / "kill-figures.json").write_text(json.dumps(figures, indent=2))
    print("\nSIGKILL runs:", json.dumps(totals))
    assert totals["runs"] >= 20
    assert totals["duplicate_cases"] == 0
    assert totals["cases"] == totals["messages"]
    assert totals["duplicate_receipts"] <= totals["kills"]
