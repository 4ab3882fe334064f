"""The pure decisions of history import and late receipts, and their config keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbot.config import settings_from_mapping
from mailbot.errors import ConfigError
from mailbot.intake.history import FolderHistory, receipt_too_late
from mailbot.mail.message import FetchedMessage

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
BASE = {
    "mailbox": {"host": "imap.example.com", "username": "s@example.com", "password_env": "P"},
    "smtp": {"host": "smtp.example.com", "from": "s@example.com"},
}


def test_a_receipt_within_the_age_limit_is_in_time() -> None:
    assert receipt_too_late(NOW - timedelta(hours=71), NOW + timedelta(days=2), NOW, 72) is None


def test_a_receipt_past_the_age_limit_is_too_late() -> None:
    reason = receipt_too_late(NOW - timedelta(hours=73), NOW + timedelta(days=2), NOW, 72)
    assert reason is not None and "receipt_max_age_hours" in reason


def test_a_receipt_never_promises_a_date_already_past() -> None:
    reason = receipt_too_late(NOW - timedelta(hours=1), NOW - timedelta(minutes=1), NOW, 72)
    assert reason == "its acknowledgement deadline has already passed"


def _fetched(uid: int, at: datetime, uidvalidity: int = 7) -> FetchedMessage:
    return FetchedMessage(raw=b"", folder="INBOX", uidvalidity=uidvalidity, uid=uid,
                          internal_date=at)


def test_history_is_what_the_folder_held_at_first_sight_and_arrived_before_the_start() -> None:
    past = FolderHistory(first_started=NOW, uidvalidity=7, until_uid=10)
    assert past.covers(_fetched(10, NOW - timedelta(days=400)))
    assert not past.covers(_fetched(11, NOW - timedelta(days=400))), "filed in later"
    assert not past.covers(_fetched(3, NOW + timedelta(seconds=1))), "arrived after the start"
    assert not past.covers(_fetched(3, NOW - timedelta(days=1), uidvalidity=8)), "new UIDs"


def test_the_defaults_import_history_and_withhold_receipts_after_72_hours() -> None:
    settings = settings_from_mapping(BASE, environ={"P": "x"})
    assert settings.mailbox.answer_existing is False
    assert settings.policy.receipt_max_age_hours == 72


def test_bad_values_name_their_keys() -> None:
    with pytest.raises(ConfigError, match=r"mailbox\.answer_existing"):
        settings_from_mapping({**BASE, "mailbox": {**BASE["mailbox"], "answer_existing": "yes"}},
                              environ={"P": "x"})
    with pytest.raises(ConfigError, match=r"policy\.receipt_max_age_hours"):
        settings_from_mapping({**BASE, "policy": {"receipt_max_age_hours": 0}},
                              environ={"P": "x"})
