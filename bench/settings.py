"""The mailbot settings every benchmark uses: the bench's servers, a receipt for every report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailbot.config import (
    DatabaseSettings,
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    SecretsSettings,
    Settings,
    SmtpSettings,
    StorageSettings,
    TeamSettings,
)

HOST = "127.0.0.1"
OWN_ADDRESS = "Example Security <security@example.test>"
TEAM_ADDRESS = "alice@team.example.test"
TEAM_DOMAIN = "team.example.test"
ONCALL = "oncall@team.example.test"
TIMEZONE = "Europe/Amsterdam"
TOKEN_KEY = "bench-token-key"
# The backlog repeats a few hundred senders; the per-sender limit would turn most copies into
# rate-limited cases without a receipt, which is less work than a backlog of distinct reporters.
# The hourly limit on all receipts likewise.
RECEIPT_LIMIT = 1_000_000


@dataclass(frozen=True)
class Imap:
    """Where a benchmark mailbox lives; plain data so it can cross to a worker process."""

    port: int
    username: str
    password: str

    def as_dict(self) -> dict[str, Any]:
        return {"port": self.port, "username": self.username, "password": self.password}


def bench_settings(imap: Imap, smtp_port: int, db_url: str, *, batch_size: int = 100,
                   encryption: str = "aes-256-gcm", key_file: str = "") -> Settings:
    return Settings(
        mailbox=MailboxSettings(
            host=HOST,
            port=imap.port,
            security="none",
            username=imap.username,
            password=imap.password,
            batch_size=batch_size,
            verify_tls=False,
            answer_existing=True,  # the backlog is answered, as it was before history import
        ),
        smtp=SmtpSettings(
            host=HOST, port=smtp_port, security="none", from_address=OWN_ADDRESS, verify_tls=False
        ),
        database=DatabaseSettings(url=db_url),
        team=TeamSettings(
            addresses=(TEAM_ADDRESS,), domains=(TEAM_DOMAIN,), authserv_id="mx.example.test"
        ),
        policy=PolicySettings(timezone=TIMEZONE, receipts_per_sender_per_day=RECEIPT_LIMIT,
                              receipts_per_hour=RECEIPT_LIMIT),
        oncall=OncallSettings(addresses=(ONCALL,)),
        secrets=SecretsSettings(token_key=TOKEN_KEY.encode()),
        # No key_file on SQLite: the key is generated beside the database, as on a first run.
        storage=StorageSettings(encryption=encryption, key_file=key_file),
    )


def bench_toml(imap: Imap, smtp_port: int, db_url: str) -> str:
    """The same settings as a config file for ``mailbot run``; the password comes from the env."""
    return f"""\
[mailbox]
host = "{HOST}"
port = {imap.port}
security = "none"
username = "{imap.username}"
password_env = "MAILBOT_BENCH_IMAP_PASSWORD"
verify_tls = false
answer_existing = true

[smtp]
host = "{HOST}"
port = {smtp_port}
security = "none"
from = "{OWN_ADDRESS}"

[database]
url = "{db_url}"

[team]
addresses = ["{TEAM_ADDRESS}"]
domains = ["{TEAM_DOMAIN}"]
authserv_id = "mx.example.test"

[policy]
timezone = "{TIMEZONE}"
receipts_per_sender_per_day = {RECEIPT_LIMIT}
receipts_per_hour = {RECEIPT_LIMIT}

[oncall]
addresses = ["{ONCALL}"]

[secrets]
token_key_env = "MAILBOT_BENCH_TOKEN_KEY"
"""
