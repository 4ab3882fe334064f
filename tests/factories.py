"""Builders for tests: messages as bytes, settings that reach the test servers, an App."""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import shutil
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailbot.app import App
from mailbot.clock import Clock
from mailbot.config import (
    DatabaseSettings,
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    SecretsSettings,
    Settings,
    SmtpSettings,
    TeamSettings,
)
from mailbot.config_storage import StorageSettings
from mailbot.crypto.keys import new_key_text
from mailbot.store import migrate

_counter = itertools.count(1)

TEAM_DOMAIN = "team.example.test"
AUTHSERV_ID = "mx.example.test"


def message(
    *,
    sender: str = "Rita Reporter <rita@reporter.example>",
    to: str = "security@example.test",
    subject: str = "XSS in the login form",
    body: str = "The login form reflects the next parameter.\n",
    message_id: str | None = "auto",
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    """A plain text message as an MUA would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    if message_id == "auto":
        message_id = f"<m{next(_counter)}.{id(msg)}@reporter.example>"
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def settings(
    tmp_path: Path,
    mailbox: MailboxSettings,
    smtp: SmtpSettings,
    *,
    database_url: str | None = None,
    **policy: Any,
) -> Settings:
    return Settings(
        mailbox=mailbox,
        smtp=smtp,
        database=DatabaseSettings(url=database_url or f"sqlite:///{tmp_path / 'mailbot.db'}"),
        team=TeamSettings(
            addresses=("alice@team.example.test",), domains=(TEAM_DOMAIN,), authserv_id=AUTHSERV_ID
        ),
        policy=dataclasses.replace(PolicySettings(timezone="Europe/Amsterdam"), **policy),
        oncall=OncallSettings(addresses=("oncall@team.example.test",)),
        secrets=SecretsSettings(token_key=b"test-token-key"),
        storage=StorageSettings(key_file=str(storage_key(tmp_path))),
    )


_SHARED_KEYS: list[Path] = []


def shared_storage() -> StorageSettings:
    """Storage settings with one key for the whole test session (settings built without a
    tmp_path, such as those of a PostgreSQL database shared by two instances)."""
    if not _SHARED_KEYS:
        directory = Path(tempfile.mkdtemp(prefix="mailbot-test-keys-"))
        atexit.register(shutil.rmtree, directory, True)
        _SHARED_KEYS.append(storage_key(directory))
    return StorageSettings(key_file=str(_SHARED_KEYS[0]))


def storage_key(directory: Path, name: str = "storage.key") -> Path:
    """A storage key file in ``directory`` (made once, then reused)."""
    path = directory / name
    if not path.exists():
        path.write_text(new_key_text())
        path.chmod(0o600)
    return path


def app(settings: Settings, clock: Clock | None = None) -> App:
    instance = App(settings, clock=clock)
    migrate(instance.db)
    instance.prepare_storage()
    return instance
