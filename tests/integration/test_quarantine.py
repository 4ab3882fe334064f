"""``mailbot quarantine list|show|retry``: a message that broke intake three times is kept for a
person, who can look at it and, after a fix, run it through intake again without doubling it.
Real Dovecot and SMTP sink; the fault is a rule that raises on one subject."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbot.app import App
from mailbot.cases.models import Case, InboundFailure, Outbox
from mailbot.cli import main
from mailbot.intake import pipeline
from mailbot.intake.classify import classify as real_classify
from tests import daemons, factories
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

POISON = b"Do not let this through"


@pytest.fixture
def setup(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, Path]]:
    settings = factories.settings(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings())
    app = factories.app(settings)
    config = daemons.write_config(tmp_path, imap_account.mailbox_settings(),
                                  smtp_sink.smtp_settings(), settings.database.url,
                                  extra={"storage": {"key_file": settings.storage.key_file}})

    def exploding_classify(msg: Any, folder: str, s: Any, **signed: Any) -> Any:
        if "poison" in msg.subject:
            raise RuntimeError("boom: the classifier broke")
        return real_classify(msg, folder, s, **signed)

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "classify", exploding_classify)
        assert imap_account.server is not None
        imap_account.server.deliver(imap_account, factories.message(
            subject="poison", sender="rita@reporter.example", body=POISON.decode()))
        for _ in range(3):
            asyncio.run(app.run_once())
    # The fix is in (the monkeypatch is gone): the quarantine waits for a person.
    yield app, config
    app.close()


def quarantine(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["--config", str(config), "quarantine", *args])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def counts(app: App) -> tuple[int, int, int]:
    """Cases, receipts queued, quarantine rows."""
    with app.db.session() as s:
        return (s.scalar(select(func.count()).select_from(Case)) or 0,
                s.scalar(select(func.count()).where(Outbox.kind == "receipt")) or 0,
                s.scalar(select(func.count()).select_from(InboundFailure)) or 0)


def test_a_quarantined_message_is_listed_shown_and_retried_once(
    setup: tuple[App, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    app, config = setup
    assert counts(app) == (0, 0, 1)
    status, out = quarantine(config, capsys, "list", "--json")
    [entry] = json.loads(out)
    assert status == 0 and entry["folder"] == "INBOX" and entry["tries"] == 3
    assert "boom: the classifier broke" in entry["error"]

    status, out = quarantine(config, capsys, "show", str(entry["id"]))
    assert status == 0
    assert "Subject: poison" in out and "boom" in out
    assert POISON.decode() not in out  # never the body

    status, out = quarantine(config, capsys, "retry", str(entry["id"]))
    assert status == 0, out
    assert "opened as SEC-" in out
    assert counts(app) == (1, 1, 0)

    status, out = quarantine(config, capsys, "retry", str(entry["id"]))
    assert status == 2 and "no quarantined message" in out
    asyncio.run(app.run_once())  # the daemon does not read it from the mailbox again
    assert counts(app)[:2] == (1, 1)
    assert quarantine(config, capsys, "list")[1].strip() == "nothing quarantined"


def test_retrying_a_message_that_became_a_case_meanwhile_changes_nothing(
    setup: tuple[App, Path], imap_account: ImapAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    app, config = setup
    [entry] = json.loads(quarantine(config, capsys, "list", "--json")[1])
    with app.db.session() as s:
        row = s.get(InboundFailure, entry["id"])
        assert row is not None and row.raw_id is not None
        raw = app.intake.raw_store.get(s, row.raw_id)
    assert imap_account.server is not None
    imap_account.server.deliver(imap_account, raw)  # delivered again, now that intake works
    asyncio.run(app.run_once())
    assert counts(app) == (1, 1, 1)

    status, out = quarantine(config, capsys, "retry", str(entry["id"]))
    assert status == 0, out
    assert "was already on SEC-" in out
    assert counts(app) == (1, 1, 0)


def test_a_retry_that_fails_again_stays_quarantined_and_says_why(
    setup: tuple[App, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, config = setup
    [entry] = json.loads(quarantine(config, capsys, "list", "--json")[1])

    def still_broken(msg: Any, folder: str, s: Any, **signed: Any) -> Any:
        raise RuntimeError("still broken")

    monkeypatch.setattr(pipeline, "classify", still_broken)
    status, out = quarantine(config, capsys, "retry", str(entry["id"]))
    assert status == 1 and "still broken" in out
    assert counts(app) == (0, 0, 1)
    [again] = json.loads(quarantine(config, capsys, "list", "--json")[1])
    assert again["tries"] == 4
