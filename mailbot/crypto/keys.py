"""Storage keys: 32 random bytes, written as base64, named by an id derived from the key.

The id (16 hex digits) is the first 8 bytes of an HMAC of a fixed label under the key: it names a
key in messages and in every stored value without saying anything about the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from mailbot.errors import StorageKeyError

KEY_BYTES = 32


@dataclass(frozen=True)
class StorageKey:
    secret: bytes = field(repr=False)
    source: str = ""  # where it came from, for messages: a path or "$VAR"

    @cached_property
    def id(self) -> str:
        return key_id(self.secret)


def key_id(secret: bytes) -> str:
    return hmac.new(secret, b"mailbot storage key id", hashlib.sha256).digest()[:8].hex()


def new_key_text() -> str:
    """A fresh key as it is written to a file: base64 of 32 random bytes, and a newline."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n"


def parse_key(text: str, source: str) -> StorageKey:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) != KEY_BYTES:
        raise StorageKeyError(f"{source}: expected base64 of {KEY_BYTES} random bytes "
                              "(make one with `mailbot keys new-storage-key`)")
    return StorageKey(secret, source)


def read_key_file(path: Path) -> StorageKey:
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not base64 text"
        raise StorageKeyError(f"storage key file {path}: cannot read it ({reason})") from None
    return parse_key(text, str(path))


def write_key_file(path: Path) -> StorageKey:
    """Create ``path`` (mode 0600, never over an existing file) holding a fresh key."""
    text = new_key_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return parse_key(text, str(path))
