"""AES-256-GCM sealing with a keyring: one key seals, every key it holds opens.

A sealed value is ``0x01 | key id (8) | nonce (12) | ciphertext and tag``; the associated data is
the value's identity (``table.column:primary key``), so a ciphertext copied onto another row, or
into another column, fails its integrity check. Nonces are random (96 bits): with one key, the
chance of a repeat stays negligible far beyond the number of values a mailbox produces.

Content hashes (the dedupe key) are stored as HMAC-SHA256 under a key derived from the storage key
(HKDF), so that the database cannot be used to confirm a guessed report.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailbot.crypto.keys import StorageKey
from mailbot.sealing import CLEAR, IntegrityFailure, key_id_of

SEALED = b"\x01"
_AAD_PREFIX = b"mailbot sealed value v1\x00"


class AesGcmSealer:
    """Seals with ``keys[0]``; opens with any of ``keys``. ``legacy_clear`` also opens values
    stored in clear (written before encryption was turned on), until they are re-sealed."""

    encrypting = True

    def __init__(self, keys: Iterable[StorageKey], *, legacy_clear: bool = False) -> None:
        self.keys = list({k.id: k for k in keys}.values())
        if not self.keys:
            raise ValueError("a sealer needs at least one key")
        self._aead = {k.id: AESGCM(k.secret) for k in self.keys}
        self._hash_keys = [_derive(k.secret, b"mailbot content index") for k in self.keys]
        self.legacy_clear = legacy_clear
        # Asked for a key id this sealer does not hold (a rotation running in another process
        # hands its new key over through the database): the key, or None.
        self.find_key: Callable[[str], StorageKey | None] | None = None

    def learn(self, key: StorageKey) -> None:
        """Seal with ``key`` from now on; keep opening with the others."""
        if self.keys[0].id == key.id:
            return
        self.keys = [key, *(k for k in self.keys if k.id != key.id)]
        self._aead[key.id] = AESGCM(key.secret)
        self._hash_keys = [_derive(k.secret, b"mailbot content index") for k in self.keys]

    @property
    def key_id(self) -> str:
        return self.keys[0].id

    @property
    def key_ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def seal(self, plain: bytes, identity: str) -> bytes:
        key = self.keys[0]
        nonce = os.urandom(12)
        body = self._aead[key.id].encrypt(nonce, plain, _AAD_PREFIX + identity.encode())
        return SEALED + bytes.fromhex(key.id) + nonce + body

    def open(self, stored: bytes, identity: str) -> bytes:
        if stored[:1] == CLEAR:
            if self.legacy_clear:
                return bytes(stored[1:])
            raise IntegrityFailure(f"{identity} is stored in clear, where a sealed value belongs")
        kid = key_id_of(stored)
        if kid is None or len(stored) < 1 + 8 + 12 + 16:
            raise IntegrityFailure(f"{identity} is not a sealed value (truncated or overwritten)")
        aead = self._aead.get(kid)
        if aead is None and self.find_key is not None:
            found = self.find_key(kid)
            if found is not None and found.id == kid:
                self.learn(found)
                aead = self._aead[kid]
        if aead is None:
            raise IntegrityFailure(f"{identity} is sealed with storage key {kid}, which is not "
                                   f"configured (the configured key is {self.key_id})")
        try:
            return aead.decrypt(stored[9:21], stored[21:], _AAD_PREFIX + identity.encode())
        except InvalidTag:
            raise IntegrityFailure(f"{identity} failed its integrity check under storage key "
                                   f"{kid} (tampered, truncated or copied from another row)"
                                   ) from None

    def index_keys(self, digest: str) -> list[str]:
        keyed = [hmac.new(k, digest.encode(), hashlib.sha256).hexdigest()
                 for k in self._hash_keys]
        return [*keyed, digest] if self.legacy_clear else keyed


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
