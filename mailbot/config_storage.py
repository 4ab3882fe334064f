"""The settings of the [storage] (encryption at rest) and [retention] sections, and their parsing.

Kept apart from ``mailbot.config`` (which calls these parsers with its typed key reader, the only
reader of the file) so that module stays small. Every error names the key. The storage key itself
is read by ``mailbot.crypto``, not here: these settings say where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailbot.config_sections import Reader
from mailbot.errors import ConfigError

STORAGE_KEYS = frozenset({"encryption", "key_file", "key_env", "previous_key_files"})
RETENTION_KEYS = frozenset({"purge_closed_after_days", "mailbox_keep_days", "purge_mailbox"})
ENCRYPTIONS = ("aes-256-gcm", "off")


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    encryption: str = "aes-256-gcm"  # or "off"
    key_file: str = ""  # absolute, or "" (then key_env, or the key beside a SQLite database)
    key_env: str = ""
    previous_key_files: tuple[str, ...] = ()  # keys that only open (during and after rotation)

    @property
    def encrypting(self) -> bool:
        return self.encryption != "off"


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    purge_closed_after_days: int = 0  # 0 = never
    mailbox_keep_days: int = 0  # 0 = never
    purge_mailbox: bool = False


def read_storage(r: Reader, base: Path) -> StorageSettings:
    def path(value: str) -> str:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    encryption = r.text("storage.encryption", "aes-256-gcm").lower()
    if encryption not in ENCRYPTIONS:
        raise ConfigError("storage.encryption", 'one of "aes-256-gcm", "off"', encryption)
    key_file = r.text("storage.key_file", "", allow_empty=True)
    key_env = r.text("storage.key_env", "", allow_empty=True)
    if key_file and key_env:
        raise ConfigError("storage.key_file", "either key_file or key_env, not both", key_file)
    return StorageSettings(
        encryption=encryption,
        key_file=path(key_file) if key_file else "",
        key_env=key_env,
        previous_key_files=tuple(path(v) for v in r.str_list("storage.previous_key_files")),
    )


def read_retention(r: Reader) -> RetentionSettings:
    return RetentionSettings(
        purge_closed_after_days=r.integer("retention.purge_closed_after_days", 0, minimum=0),
        mailbox_keep_days=r.integer("retention.mailbox_keep_days", 0, minimum=0),
        purge_mailbox=r.boolean("retention.purge_mailbox", False),
    )
